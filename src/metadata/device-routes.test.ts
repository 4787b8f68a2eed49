import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDeviceModel } from "../config/model.ts";
import { diagText } from "./diag.ts";
import { parseNetDev, portMetrics } from "./netdev.ts";
import { type Caller, type MetadataDeps, MetadataService } from "./service.ts";

const A = "3b4c5d6e-7f80-4912-8a3b-4c5d6e7f8a06";
const B = "3b4c5d6e-7f80-4912-8a3b-4c5d6e7f8a07";
const C = "3b4c5d6e-7f80-4912-8a3b-4c5d6e7f8a08";
const CALLERS: Record<string, Caller> = {
  "10.1.0.2": { appUuid: A, appName: "web", uplinkIfname: "eth0", allowToDiscover: true },
  "10.1.0.3": { appUuid: B, appName: "db", uplinkIfname: null },
};
const b64 = (s: string) => Buffer.from(s).toString("base64");
const dir = mkdtempSync(join(tmpdir(), "evebox-meta-routes-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = buildDeviceModel({
  apps: [
    { uuidandversion: { uuid: A }, displayname: "web", metaDataType: "MetaDataOpenStack", userData: b64("#cloud-config\nhostname: web\n") },
    { uuidandversion: { uuid: B }, displayname: "db" },
    { uuidandversion: { uuid: C }, displayname: "cache" },
  ],
}).model;

function service(more: Partial<MetadataDeps> = {}) {
  return new MetadataService({
    callerAt: (ip) => CALLERS[ip] ?? null,
    model: () => ({ model, problems: [] }),
    device: () => ({ uuid: "6c6cb828-b0be-4166-9daf-ab353430dbc1", name: "dev1" }),
    ipv4Of: () => null,
    ...more,
  });
}
const req = (s: MetadataService, path: string, ip = "10.1.0.2", init: RequestInit = {}) => s.fetch(new Request(`http://169.254.169.254${path}`, init), ip, 40000);

describe("the metadata server's other routes (ECO-METADATA), each answered as EVE would on this device", () => {
  test("WWAN: no modems, as EVE answers without one (a status without networks; no metrics: 204)", async () => {
    const s = service();
    const st = await req(s, "/eve/v1/wwan/status.json");
    expect(st.status).toBe(200);
    expect(await st.json()).toEqual({ DPCKey: "", DPCTimestamp: "0001-01-01T00:00:00Z", RSConfigTimestamp: "0001-01-01T00:00:00Z", Networks: null });
    expect((await req(s, "/eve/v1/wwan/metrics.json")).status).toBe(204);
    expect((await req(s, "/eve/v1/wwan/status.json", "10.1.0.99")).status).toBe(403);
  });

  test("discover-network.json: the other apps' addresses for an app whose interface allows it; 403 otherwise", async () => {
    const s = service({ appInterfaces: () => [{ appUuid: A, hostIfname: "eva1v0", ip: "10.1.0.2" }, { appUuid: B, hostIfname: "evb1v0", ip: "10.1.0.3" }, { appUuid: B, hostIfname: "evb1v1", ip: "10.2.0.3" }] });
    const r = await req(s, "/eve/v1/discover-network.json");
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({
      [B]: [{ port: "evb1v0", "network-address": "10.1.0.3" }, { port: "evb1v1", "network-address": "10.2.0.3" }],
      [C]: [],
    });
    const no = await req(s, "/eve/v1/discover-network.json", "10.1.0.3");
    expect(no.status).toBe(403);
    expect(await no.json()).toEqual({ message: "This app instance is not allowed to discover" });
  });

  test("networks/metrics.json: each device port with its counters, EVE's keys; 204 before the ports are known", async () => {
    const proc = join(dir, "net-dev");
    writeFileSync(proc, "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n  eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n");
    const sys = join(dir, "sys-net");
    mkdirSync(join(sys, "eth0"), { recursive: true });
    writeFileSync(join(sys, "eth0", "operstate"), "up\n");
    mkdirSync(join(sys, "lo"), { recursive: true });
    expect(parseNetDev(readFileSync(proc, "utf8")).get("eth0")?.slice(0, 4)).toEqual([1000, 10, 1, 2]);
    const metrics = portMetrics(["eth0", "eth0", "../../etc", "wlan9"], { procNetDev: proc, sysClassNet: sys });
    const s = service({ portMetrics: () => metrics });
    expect(await (await req(s, "/eve/v1/networks/metrics.json")).json()).toEqual([
      { IfName: "eth0", Up: true, TxBytes: 2000, RxBytes: 1000, TxDrops: 4, RxDrops: 2, TxPkts: 20, RxPkts: 10, TxErrors: 3, RxErrors: 1, TxACLDrops: 0, RxACLDrops: 0, TxACLRateLimitDrops: 0, RxACLRateLimitDrops: 0 },
    ]);
    expect((await req(service(), "/eve/v1/networks/metrics.json")).status).toBe(204);
  });

  test("diag: the device's summary as text (each object's state and error); bounded at EVE's 64 KiB", async () => {
    const text = diagText({
      device: { uuid: null, name: "dev1" },
      objects: (k) => (k === "app" ? [{ id: A, name: "web", state: "RUNNING", error: null }, { id: B, name: "db", state: "INITIAL", error: "content tree x: sha256 mismatch\nsecond line" }] : []),
      now: new Date(0),
    });
    const s = service({ diag: () => text });
    const r = await req(s, "/eve/v1/diag");
    expect(r.headers.get("content-type")).toStartWith("text/plain");
    const body = await r.text();
    expect(body).toContain("device dev1: local mode (no controller)");
    expect(body).toContain("app instances: 2, 1 in error");
    expect(body).toContain(`  db (${B}): INITIAL — ERROR: content tree x: sha256 mismatch second line`);
    const big = service({ diag: () => "x".repeat(200_000) });
    expect((await (await req(big, "/eve/v1/diag")).text()).length).toBeLessThanOrEqual(65535);
    expect((await req(service(), "/eve/v1/diag")).status).toBe(404);
  });

  test("the signer: the payload signed as the device (EVE's AuthContainer), 64 KiB at most; without a key a clear 500", async () => {
    const got: Uint8Array[] = [];
    const s = service({ sign: async (p) => (got.push(p), new Uint8Array([0x0a, p.length])) });
    const r = await req(s, "/eve/v1/tpm/signer", "10.1.0.3", { method: "POST", body: "attest me" });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/x-proto-binary");
    expect([...new Uint8Array(await r.arrayBuffer())]).toEqual([0x0a, 9]);
    expect(new TextDecoder().decode(got[0])).toBe("attest me");
    expect((await req(s, "/eve/v1/tpm/signer", "10.1.0.3", { method: "POST", body: "x".repeat(65536) })).status).toBe(400);
    expect((await req(s, "/eve/v1/tpm/signer", "10.1.0.99", { method: "POST", body: "x" })).status).toBe(403);
    const none = await req(service(), "/eve/v1/tpm/signer", "10.1.0.3", { method: "POST", body: "x" });
    expect(none.status).toBe(500);
    expect((await none.json()).message).toContain("no signing key");
    const failing = await req(service({ sign: async () => Promise.reject(new Error("key unreadable")) }), "/eve/v1/tpm/signer", "10.1.0.3", { method: "POST", body: "x" });
    expect((await failing.json()).message).toBe("Failed to AddAuthentication: key unreadable");
  });

  test("activate-credential: no TPM, EVE's 500 with why; kubeconfig: refused (no Kubernetes here), 501", async () => {
    const s = service();
    for (const init of [{}, { method: "POST", body: "{}" }]) {
      const r = await req(s, "/eve/v1/tpm/activatecredential/", "10.1.0.2", init);
      expect(r.status).toBe(500);
      expect((await r.json()).message).toContain("no TPM");
    }
    const k = await req(s, "/eve/v1/kubeconfig", "10.1.0.2", { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } });
    expect(k.status).toBe(501);
    expect((await k.json()).message).toContain("Kubernetes");
  });

  test("/metrics: the node exporter's answer forwarded, as EVE; 502 saying so when none answers", async () => {
    const exporter = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (r) => (new URL(r.url).pathname === "/metrics" ? new Response("node_load1 0.5\n", { headers: { "Content-Type": "text/plain; version=0.0.4" } }) : new Response("", { status: 404 })) });
    try {
      const r = await req(service({ nodeExporter: `http://127.0.0.1:${exporter.port}` }), "/metrics");
      expect(r.status).toBe(200);
      expect(await r.text()).toBe("node_load1 0.5\n");
    } finally {
      void exporter.stop(true);
    }
    // An answer over the bound is not forwarded (read no further than it).
    const huge = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(new Blob([new Uint8Array(9 * 1024 * 1024)]).stream()) });
    try {
      const r = await req(service({ nodeExporter: `http://127.0.0.1:${huge.port}` }), "/metrics");
      expect(r.status).toBe(502);
      expect((await r.json()).message).toContain("over");
    } finally {
      void huge.stop(true);
    }
    const down = await req(service({ nodeExporter: "http://127.0.0.1:1" }), "/metrics");
    expect(down.status).toBe(502);
    expect((await down.json()).message).toContain("no node exporter answers");
  });

  test("OpenStack metadata for an app whose metaDataType is MetaDataOpenStack (as EVE); 404 for others", async () => {
    const s = service();
    expect(await (await req(s, "/openstack")).text()).toBe("latest\n");
    expect(await (await req(s, "/openstack/latest/meta_data.json")).json()).toEqual({ uuid: A, hostname: "web", name: "web", launch_index: 0, keys: null, public_keys: {} });
    expect(await (await req(s, "/openstack/latest/network_data.json")).json()).toEqual({ services: [], networks: [] });
    expect(await (await req(s, "/openstack/latest/vendor_data.json")).json()).toEqual({});
    const ud = await req(s, "/openstack/latest/user_data");
    expect(ud.headers.get("content-type")).toBe("text/yaml");
    expect(await ud.text()).toBe("#cloud-config\nhostname: web\n");
    expect((await req(s, "/openstack/latest/other")).status).toBe(404);
    const db = await req(s, "/openstack/latest/meta_data.json", "10.1.0.3");
    expect(db.status).toBe(404);
    expect((await db.json()).message).toBe(`no MetaDataOpenStack for ${B}`);
  });

  test("app/info.json has EVE's AppBlobs (none: no AppCustom volumes here) and app-custom-blobs says so", async () => {
    const s = service();
    expect(await (await req(s, "/eve/v1/app/info.json")).json()).toEqual({ AppBlobs: null, "app-instance-uuid": A, "app-instance-name": "web" });
    const r = await req(s, "/eve/app-custom-blobs/anything");
    expect(r.status).toBe(404);
    expect((await r.json()).message).toContain("AppCustom");
  });
});
