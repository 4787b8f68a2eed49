// Sending a bundle file for its dry run (POST /api/v1/bundles?dryRun=1) with upload progress: XMLHttpRequest,
// since fetch reports none. The answer is the plan with the staged id; everything after (other parameter
// values, the apply) goes through ui/api.ts with that id, without sending the file again.
import { ApiError } from "./api";

export interface BundleRef {
  collection: string;
  kind: string;
  id: string;
  name: string | null;
}

export interface BundleParam {
  name: string;
  kind: "port" | "serial" | "subnet" | "string";
  label: string;
  default: string | null;
  pattern: string | null;
  value: string | null;
  choices: string[] | null;
  problem: string | null;
}

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

export function uploadBundle(url: string, file: Blob, onProgress: (sent: number, total: number) => void, signal?: AbortSignal): Promise<BundlePlan> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.total || file.size);
    const onAbort = () => xhr.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    xhr.onload = () => {
      signal?.removeEventListener("abort", onAbort);
      let data: Record<string, unknown> = {};
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(data as unknown as BundlePlan);
      const problems = Array.isArray(data.problems) ? (data.problems as { path: string; message: string }[]) : undefined;
      reject(new ApiError(xhr.status, typeof data.error === "string" ? data.error : `The device answered ${xhr.status}.`, problems));
    };
    xhr.onerror = () => (signal?.removeEventListener("abort", onAbort), reject(new ApiError(0, "The connection to the device dropped.")));
    xhr.onabort = () => (signal?.removeEventListener("abort", onAbort), reject(new ApiError(0, "Upload cancelled.")));
    xhr.send(file);
  });
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
