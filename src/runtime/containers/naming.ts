import { createHash } from "node:crypto";
import type { ContainerSpec } from "./types.ts";

/** Docker names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*; keep them short enough to read in `docker ps`. */
export function sanitizeName(name: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .slice(0, 40)
    .replace(/[^a-z0-9]+$/, "");
  return cleaned || "app";
}

export function containerName(spec: Pick<ContainerSpec, "name" | "appUuid">): string {
  const short = spec.appUuid.replace(/[^a-zA-Z0-9]/g, "").slice(0, 8).toLowerCase();
  return `evebox-${sanitizeName(spec.name)}-${short}`;
}

/** A stable hash of everything in the spec that needs a new container when it changes. */
export function specGeneration(spec: ContainerSpec): string {
  const canonical = {
    appUuid: spec.appUuid,
    name: spec.name,
    image: spec.image,
    env: sortedEntries(spec.env),
    cmd: spec.cmd ?? null,
    entrypoint: spec.entrypoint ?? null,
    memoryBytes: spec.memoryBytes ?? 0,
    cpus: spec.cpus ?? 0,
    mounts: spec.mounts.map((m) => [m.source, m.target, m.readOnly]),
    networkMode: spec.networkMode ?? null,
    labels: sortedEntries(spec.labels ?? {}),
  };
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex").slice(0, 16);
}

function sortedEntries(record: Record<string, string>): [string, string][] {
  return Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export interface LabelKeys {
  managed: string;
  app: string;
  appName: string;
  generation: string;
}

export function labelKeys(namespace: string): LabelKeys {
  return {
    managed: `${namespace}.managed`,
    app: `${namespace}.app`,
    appName: `${namespace}.app.name`,
    generation: `${namespace}.generation`,
  };
}
