// Sending a bundle file for its dry run (POST /api/v1/bundles?dryRun=1) with upload progress: XMLHttpRequest,
// since fetch reports none. The answer is the plan with the staged id; everything after (other parameter
// values, the apply) goes through ui/api.ts with that id, without sending the file again.
import type { ParamView } from "../src/bundles/placeholders.ts";
import { sendBody } from "./images";

export interface BundleRef {
  collection: string;
  kind: string;
  id: string;
  name: string | null;
}

/** A parameter as the device offers it (the server's own type). */
export type BundleParam = ParamView;

export interface BundlePlan {
  staged: string;
  bundle: { name: string; version: string; description: string };
  signature: { status: "unsigned" | "verified" | "untrusted"; key: { id: string; name: string } | null };
  images: { name: string; sha256: string; size: number; present: boolean }[];
  parameters: BundleParam[];
  upgrade: { from: string } | null;
  plan: { added: BundleRef[]; changed: BundleRef[]; unchanged: BundleRef[]; removed: BundleRef[] } | null;
  problems: { path: string; message: string }[];
  configVersion?: number | null;
}

export async function uploadBundle(url: string, file: Blob, onProgress: (sent: number, total: number) => void, signal?: AbortSignal): Promise<BundlePlan> {
  return (await sendBody("POST", url, file, (n) => onProgress(n, file.size), signal)).body as BundlePlan;
}

/** The problem of a subnet field the browser can tell at once (syntax); collisions are the device's answer. */
export function subnetSyntaxProblem(value: string): string | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value.trim());
  if (!m) return "An IPv4 subnet such as 10.77.0.0/24.";
  const parts = m.slice(1, 5).map(Number);
  if (parts.some((p) => p > 255)) return "Each part of the address is 0 to 255.";
  const prefix = Number(m[5]);
  if (prefix < 8 || prefix > 28) return "The prefix is 8 to 28.";
  const addr = parts.reduce((a, p) => a * 256 + p, 0);
  const block = 2 ** (32 - prefix);
  if (addr % block !== 0) return `Host bits are set: the network address is ${[24, 16, 8, 0].map((s) => Math.floor((addr - (addr % block)) / 2 ** s) % 256).join(".")}/${prefix}.`;
  return null;
}
