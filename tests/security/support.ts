// The compiled binary with an admin API token, for the hostile-config tests: setup with the one-time token,
// then a token (as a script would hold one), and a PUT helper that reports status, problems and the version.
import { join } from "node:path";
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
  const setup = new Client(evebox.url);
  const s = await setup.json("POST", "/api/v1/setup", { token: evebox.setupToken, password: "correct horse battery staple" });
  if (s.status !== 200) throw new Error(`setup: ${s.status} ${JSON.stringify(s.body)}`);
  const t = await setup.json("POST", "/api/v1/tokens", { name: "security-tests" });
  if (t.status !== 200 && t.status !== 201) throw new Error(`token: ${t.status} ${JSON.stringify(t.body)}`);
  const api = new Client(evebox.url);
  const bearer = { authorization: `Bearer ${t.body.token}` };
  const orig = api.req.bind(api);
  api.req = (method, path, body, headers = {}) => orig(method, path, body, { ...bearer, ...headers });
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
