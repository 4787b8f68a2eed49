// The compiled binary with an admin API token, for the hostile-config tests: setup with the one-time token,
// then a token (as a script would hold one), and a PUT helper that reports status, problems and the version.
import { join } from "node:path";
import { bearer, setUp } from "../support/api.ts";
import { Client, cleanup, type Evebox, startEvebox, tempDataDir } from "../support/evebox.ts";

export interface Device {
  evebox: Evebox;
  api: Client;
  dataDir: string;
  put(doc: unknown, query?: string): Promise<{ status: number; body: any }>;
  /** The running config's version (X-Config-Version), or null when there is none. */
  version(): Promise<number | null>;
  stop(): Promise<void>;
}

export async function startDevice(env: Record<string, string> = { EVEBOX_APPS: "off" }): Promise<Device> {
  const dataDir = tempDataDir("evebox-sec-");
  const evebox = await startEvebox({ dataDir, env });
  const setup = await setUp(evebox, "correct horse battery staple");
  const api = new Client(evebox.url, { headers: await bearer(setup, "security-tests") });
  return {
    evebox,
    api,
    dataDir,
    put: (doc, query = "") => api.json("PUT", `/api/v1/config${query}`, doc),
    async version() {
      const r = await api.req("GET", "/api/v1/config");
      await r.body?.cancel();
      return r.status === 200 ? Number(r.headers.get("x-config-version")) : null;
    },
    async stop() {
      await evebox.stop();
      cleanup(dataDir);
    },
  };
}

/** The paths of a 400's problems. */
export function problemPaths(body: any): string[] {
  return (body?.problems ?? []).map((p: any) => p.path);
}

export const SOCKET = (dataDir: string) => join(dataDir, "run", "evebox.sock");
