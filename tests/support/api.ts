// Talking to a running evebox's console API, for every test that drives the compiled binary: the admin's first
// setup, logging in again after a restart, an API token, putting a config, reading the status and waiting for an
// app to reach a state. Each throws with the route's answer when the device says no.
import { Client, type Evebox } from "./evebox.ts";
import { unixApi } from "./netdevice.ts";
import { waitFor } from "./wait.ts";

/** What the helpers below call: a Client (TCP, cookie or token) or the device's unix socket (unixClient). */
export interface ApiCaller {
  json(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
}

/** The local API on the device's unix socket (trusted: no login). */
export function unixClient(sock: string): ApiCaller {
  return { json: (method, path, body) => unixApi(sock, method, path, body) };
}

/** Sets the admin password with the setup token the device printed; answers the logged-in client. */
export async function setUp(evebox: Evebox, password: string): Promise<Client> {
  const api = new Client(evebox.url);
  const r = await api.json("POST", "/api/v1/setup", { token: evebox.setupToken, password });
  if (r.status !== 200) throw new Error(`POST /api/v1/setup: ${r.status} ${JSON.stringify(r.body)}`);
  return api;
}

/** Logs in with the admin password (after a restart of evebox, say); answers the logged-in client. */
export async function logIn(url: string, password: string): Promise<Client> {
  const api = new Client(url);
  const r = await api.json("POST", "/api/v1/login", { password });
  if (r.status !== 200) throw new Error(`POST /api/v1/login: ${r.status} ${JSON.stringify(r.body)}`);
  return api;
}

/** A new API token of the logged-in `api`, as the header that carries it. */
export async function bearer(api: ApiCaller, name: string): Promise<{ authorization: string }> {
  const r = await api.json("POST", "/api/v1/tokens", { name });
  if ((r.status !== 200 && r.status !== 201) || typeof r.body?.token !== "string") throw new Error(`POST /api/v1/tokens: ${r.status} ${JSON.stringify(r.body)}`);
  return { authorization: `Bearer ${r.body.token}` };
}

/** PUT /api/v1/config; answers the body (version, plan). Anything but 200/201 throws with the problems. */
export async function putConfig(api: ApiCaller, doc: unknown): Promise<any> {
  const r = await api.json("PUT", "/api/v1/config", doc);
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT /api/v1/config: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** GET /api/v1/status. */
export async function deviceStatus(api: ApiCaller): Promise<any> {
  const r = await api.json("GET", "/api/v1/status");
  if (r.status !== 200) throw new Error(`GET /api/v1/status: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/**
 * Waits until the app `app` (its name or its uuid) satisfies `pred` in the status, and answers it; on timeout the
 * message carries how the app was last seen, and `detail` (the device's output, say).
 */
export async function waitForApp(api: ApiCaller, app: string, pred: (app: any) => boolean, what: string, timeoutMs = 60_000, detail?: () => string): Promise<any> {
  let last: unknown = "not in the status";
  return waitFor(
    `app ${app} ${what}`,
    async () => {
      const a = (await deviceStatus(api)).apps.find((x: any) => x.name === app || x.uuid === app);
      last = a ?? "not in the status";
      return a && pred(a) ? a : undefined;
    },
    { timeoutMs, detail: () => `last seen: ${JSON.stringify(last)}${detail ? `\n${detail()}` : ""}` },
  );
}

/** Removes every app (an empty config) and waits for the status to show none; for afterAll. */
export async function removeAllApps(api: ApiCaller, timeoutMs = 60_000): Promise<void> {
  await putConfig(api, { apps: [] });
  await waitFor("all apps removed", async () => (await deviceStatus(api)).apps.length === 0, timeoutMs);
}
