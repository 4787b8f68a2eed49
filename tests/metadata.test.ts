// The apps' metadata server end to end: two container apps on one Local network instance ask
// http://169.254.169.254/eve/v1/… from inside their own namespaces, as EVE's apps do.
//
//   [uplink ns]  lan0 203.0.113.1/24
//        │ u-dev
//        │ uplink0 203.0.113.2/24
//   [device ns]  evebox (the built binary) with a Local NI 198.51.100.0/24 NATed to uplink0; apps "listed" (named
//                by a patch envelope) and "other" (named only by a STORE one), Docker containers attached by veth;
//                busybox httpd on the namespace's loopback as an HTTP datastore: the file of a volume artifact.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testDocker } from "./support/docker.ts";
import { type NsDevice, removeAppsOf, startDeviceIn, unixApi } from "./support/netdevice.ts";
import { busybox, type Netns, uplinkLocalNi, uplinkPair } from "./support/netns.ts";
import { startRegistryWithBusybox, type TestRegistry } from "./support/registry.ts";
import { sh } from "./support/run.ts";
import { waitFor } from "./support/wait.ts";

const U = (n: number) => `6f7e0000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const DS = U(1);
const CT = U(2);
const NI = U(3);
const APPS = { listed: U(10), other: U(11) };
const VOLS = { listed: U(20), other: U(21) };
const PE = U(30);
const PE_STORED = U(31);
const PE_VOL = U(32);
const FILE_DS = U(40);
const FILE_CT = U(41);
const FILE_VOL = U(42);
const DS_PORT = 18091;
/** The volume artifact's file: binary, 300 KiB. */
const MODEL = new Uint8Array(300 * 1024).map((_, i) => (i * 31 + (i >> 9)) & 0xff);
const MODEL_SHA = new Bun.CryptoHasher("sha256").update(MODEL).digest("hex");
const b64 = (s: string) => Buffer.from(s).toString("base64");
const FILE_A = b64("threshold: 42\n");
const FILE_B = b64("#!/bin/sh\necho patched\n");

let up: Netns;
let dev: Netns;
let registry: TestRegistry & { busyboxDigest: string };
let dataDir: string;
let evebox: NsDevice;

const IDLE = "sh -c 'trap \"exit 0\" TERM; sleep 3600 & wait'";

function doc(envelopes: unknown[]) {
  const app = (name: keyof typeof APPS) => ({
    uuidandversion: { uuid: APPS[name], version: "1" },
    displayname: name,
    activate: true,
    fixedresources: { memory: 65536, vcpus: 1 },
    volumeRefList: [{ uuid: VOLS[name] }],
    interfaces: [{ name: "eth0", networkId: NI, acls: [] }],
    userData: b64(`EVE_ECO_CMD=${IDLE}`),
  });
  return {
    deviceName: "meta-dev",
    datastores: [{ id: DS, dType: "DsContainerRegistry", fqdn: `docker://${registry.host}` }, { id: FILE_DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${DS_PORT}` }],
    contentInfo: [
      { uuid: CT, dsId: DS, URL: "evebox/busybox:latest", iformat: "CONTAINER", sha256: registry.busyboxDigest.replace(/^sha256:/, ""), displayName: "busybox" },
      { uuid: FILE_CT, dsId: FILE_DS, URL: "model.bin", iformat: "RAW", sha256: MODEL_SHA, displayName: "model" },
    ],
    // The model's volume: no app uses it, only the envelope PE_VOL names it (fetched for it).
    volumes: [...Object.values(VOLS).map((uuid) => ({ uuid, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT } })), { uuid: FILE_VOL, displayName: "model", origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: FILE_CT } }],
    networkInstances: [
      uplinkLocalNi(NI),
    ],
    // No ACL at all: the metadata server is the device's, reached like DHCP and DNS whatever the ACLs say.
    apps: [app("listed"), app("other")],
    patchEnvelopes: envelopes,
  };
}

const ENVELOPES = [
  {
    uuid: PE,
    version: "7",
    displayName: "settings",
    action: "ACTIVATE",
    appInstIdsAllowed: [APPS.listed],
    artifacts: [{ inline: { fileNameToUse: "settings.yml", base64Data: FILE_A } }, { inline: { fileNameToUse: "hook.sh", base64Data: FILE_B } }],
  },
  // A file in a volume, for the listed app.
  { uuid: PE_VOL, version: "1", action: "ACTIVATE", appInstIdsAllowed: [APPS.listed], artifacts: [{ volumeRef: { imageName: "model", fileNameToUse: "model.bin", imageId: FILE_VOL } }] },
  // Named for both apps, but only stored: neither sees it.
  { uuid: PE_STORED, version: "1", action: "STORE", appInstIdsAllowed: [APPS.listed, APPS.other], artifacts: [{ inline: { fileNameToUse: "later.txt", base64Data: b64("later") } }] },
];

const api = (method: string, path: string, body?: unknown) => unixApi(evebox.sock, method, path, body);

async function containerOf(name: keyof typeof APPS): Promise<string> {
  return waitFor(`container of ${name}`, async () => {
    const cs = await testDocker().listContainers({ filters: { label: [`evebox.app=${APPS[name]}`] } });
    return cs[0]?.State === "running" ? cs[0].Id : undefined;
  }, 60_000);
}

/** `wget -qO-` inside the app (busybox 1.35's `wget -T` segfaults: timeout instead). */
async function fetchInApp(name: keyof typeof APPS, url: string): Promise<{ code: number; out: string }> {
  const id = await containerOf(name);
  const r = await sh(["docker", "exec", id, "/bin/busybox", "timeout", "10", "/bin/busybox", "wget", "-qO-", url], { ok: [1, 124, 143] });
  return { code: r.code, out: r.out };
}

async function descriptionOf(name: keyof typeof APPS): Promise<any> {
  // The app's interface is attached a moment after its process starts: ask until it answers.
  return JSON.parse(await waitFor(`${name}'s description.json`, async () => {
    const r = await fetchInApp(name, "http://169.254.169.254/eve/v1/patch/description.json");
    return r.code === 0 ? r.out : undefined;
  }, 30_000));
}

beforeAll(async () => {
  registry = await startRegistryWithBusybox();
  ({ up, dev } = await uplinkPair("mup", "mdev"));
  dataDir = mkdtempSync(join(tmpdir(), "evebox-meta-"));
  mkdirSync(`${dataDir}-ds`);
  writeFileSync(join(`${dataDir}-ds`, "model.bin"), MODEL);
  dev.spawn([busybox(), "httpd", "-f", "-p", `127.0.0.1:${DS_PORT}`, "-h", `${dataDir}-ds`]);
  evebox = await startDeviceIn(dev, dataDir);
  const r = await api("PUT", "/api/v1/config", doc(ENVELOPES));
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT /config: ${r.status} ${JSON.stringify(r.body)}`);
}, 120_000);

afterAll(async () => {
  if (evebox) {
    await removeAppsOf(evebox, Object.values(APPS));
    evebox.proc.kill("SIGTERM");
    await evebox.proc.exited;
  }
  await dev?.destroy();
  await up?.destroy();
  await registry?.stop();
  if (dataDir) for (const d of [dataDir, `${dataDir}-ds`]) rmSync(d, { recursive: true, force: true });
}, 90_000);

describe("the metadata server at 169.254.169.254", () => {
  test("description.json: the listed app gets exactly its envelope, with EVE's keys and each file's url", async () => {
    const all = await descriptionOf("listed");
    // PE, and PE_VOL once its volume's file is downloaded; never the STORE one.
    expect(all.map((e: any) => e.PatchID).filter((id: string) => id !== PE_VOL)).toEqual([PE]);
    const d = [all.find((e: any) => e.PatchID === PE)];
    expect(d[0].Version).toBe("7");
    expect(d[0].VolumeRefs).toBeNull();
    expect(d[0].BinaryBlobs.map((b: any) => [b.fileName, b.size, b.url])).toEqual([
      ["settings.yml", FILE_A.length, `http://169.254.169.254/eve/v1/patch/download/${PE}/settings.yml`],
      ["hook.sh", FILE_B.length, `http://169.254.169.254/eve/v1/patch/download/${PE}/hook.sh`],
    ]);
    expect(d[0].BinaryBlobs[0].fileSha).toBe(new Bun.CryptoHasher("sha256").update(FILE_A).digest("hex"));
  }, 60_000);

  test("a file comes as EVE serves it (its base64 text), and decodes to the bytes the config holds", async () => {
    const r = await fetchInApp("listed", `http://169.254.169.254/eve/v1/patch/download/${PE}/hook.sh`);
    expect(r.code).toBe(0);
    expect(r.out).toBe(FILE_B);
    expect(Buffer.from(r.out, "base64").toString()).toBe("#!/bin/sh\necho patched\n");
    // The zip of the envelope, unpacked inside the app by busybox unzip.
    const id = await containerOf("listed");
    const z = await sh(["docker", "exec", id, "/bin/busybox", "sh", "-c", `cd /tmp && /bin/busybox timeout 10 /bin/busybox wget -qO pe.zip http://169.254.169.254/eve/v1/patch/download/${PE} && /bin/busybox unzip -o -q pe.zip && /bin/busybox cat settings.yml`]);
    expect(z.out).toBe(FILE_A);
  }, 60_000);

  test("an app the envelope does not name gets an empty list and cannot download its files", async () => {
    expect(await descriptionOf("other")).toEqual([]);
    const r = await fetchInApp("other", `http://169.254.169.254/eve/v1/patch/download/${PE}/hook.sh`);
    expect(r.code).not.toBe(0); // 404
    expect(r.out).toBe("");
  }, 60_000);

  test("a volume artifact: its volume's content tree is downloaded for it (no app uses it) and the app gets the file, the content tree's sha256", async () => {
    const entry = await waitFor("PE_VOL in description.json", async () => {
      const r = await fetchInApp("listed", "http://169.254.169.254/eve/v1/patch/description.json");
      return r.code === 0 ? JSON.parse(r.out).find((e: any) => e.PatchID === PE_VOL) : undefined;
    }, 60_000);
    expect(entry.BinaryBlobs).toEqual([{ fileName: "model.bin", fileSha: MODEL_SHA, fileMetaData: "", artifactMetaData: "", encArtifactMeta: {}, url: `http://169.254.169.254/eve/v1/patch/download/${PE_VOL}/model.bin`, size: MODEL.length }]);
    expect(entry.VolumeRefs).toEqual([{ fileName: "model.bin", imageName: "model", fileMetaData: "", artifactMetaData: "", encArtifactMeta: {}, imageId: FILE_VOL }]);
    const id = await containerOf("listed");
    const r = await sh(["docker", "exec", id, "/bin/busybox", "sh", "-c", `cd /tmp && /bin/busybox timeout 20 /bin/busybox wget -qO model.bin ${entry.BinaryBlobs[0].url} && /bin/busybox sha256sum model.bin && /bin/busybox stat -c %s model.bin`]);
    expect(r.out.split(/\s+/).filter(Boolean)).toEqual([MODEL_SHA, "model.bin", String(MODEL.length)]);
    // The other app is not named by it.
    expect((await fetchInApp("other", entry.BinaryBlobs[0].url)).code).not.toBe(0);
  }, 90_000);

  test("network.json names the calling app (by its address), the device and the uplink's address", async () => {
    for (const name of ["listed", "other"] as const) {
      const r = await fetchInApp(name, "http://169.254.169.254/eve/v1/network.json");
      expect(r.code).toBe(0);
      const n = JSON.parse(r.out);
      expect(n["app-instance-uuid"]).toBe(APPS[name]);
      expect(n.hostname).toBe(APPS[name]);
      expect(n["device-name"]).toBe("meta-dev");
      expect(n["external-ipv4"]).toBe("203.0.113.2");
      expect(n["caller-ip"]).toMatch(/^198\.51\.100\.\d+:\d+$/);
    }
    expect((await fetchInApp("other", "http://169.254.169.254/eve/v1/hostname")).out).toBe(`${APPS.other}\n`);
  }, 60_000);

  test("the other ECO-METADATA routes from inside an app: WWAN (no modem), diag, the signer, discover refused, OpenStack not configured", async () => {
    expect(JSON.parse((await fetchInApp("listed", "http://169.254.169.254/eve/v1/wwan/status.json")).out).Networks).toBeNull();
    const diag = await fetchInApp("listed", "http://169.254.169.254/eve/v1/diag");
    expect(diag.out).toContain(`listed (${APPS.listed}): RUNNING`);
    const id = await containerOf("listed");
    // The signer answers an AuthContainer (protobuf): its payload field holds what was posted.
    const signed = await sh(["docker", "exec", id, "/bin/busybox", "sh", "-c", "/bin/busybox timeout 10 /bin/busybox wget -qO- --post-data 'sign-me' http://169.254.169.254/eve/v1/tpm/signer | /bin/busybox od -An -c | /bin/busybox tr -d ' \\n'"]);
    expect(signed.out).toContain("sign-me");
    const disc = await sh(["docker", "exec", id, "/bin/busybox", "timeout", "10", "/bin/busybox", "wget", "-qO-", "-S", "http://169.254.169.254/eve/v1/discover-network.json"], { ok: [1] });
    expect(disc.err).toContain("403");
    const os = await sh(["docker", "exec", id, "/bin/busybox", "timeout", "10", "/bin/busybox", "wget", "-qO-", "-S", "http://169.254.169.254/openstack/latest/meta_data.json"], { ok: [1] });
    expect(os.err).toContain("404");
  }, 60_000);

  test("appCustomStatus: an app posts its own status (JSON) through 169.254.169.254 and it is taken", async () => {
    const id = await containerOf("listed");
    const r = await sh(["docker", "exec", id, "/bin/busybox", "timeout", "10", "/bin/busybox", "wget", "-qO-", "-S", "--header", "Content-Type: application/json", "--post-data", '{"phase":"calibrated"}', "http://169.254.169.254/eve/v1/app/appCustomStatus"]);
    expect(r.err).toContain("HTTP/1.1 200");
    // Another type is refused (busybox wget exits 1 on an error status).
    const bad = await sh(["docker", "exec", id, "/bin/busybox", "timeout", "10", "/bin/busybox", "wget", "-qO-", "-S", "--post-data", "x", "http://169.254.169.254/eve/v1/app/appCustomStatus"], { ok: [1] });
    expect(bad.err).toContain("415");
  }, 30_000);

  test("an app holding 16 connections open gets no 17th (the firewall drops it); other apps are not held back", async () => {
    const dropped = async () => Number((await dev.exec(["nft", "list", "chain", "inet", "evebox", "input"])).out.match(/ct count over 16 \} counter packets (\d+) /)?.[1] ?? NaN);
    const before = await dropped();
    expect(before).toBeGreaterThanOrEqual(0);
    const id = await containerOf("other");
    // 16 idle connections (nc keeps each open while its stdin, a sleep, does), then a request on a 17th.
    const hold = "for i in $(/bin/busybox seq 16); do /bin/busybox sleep 8 | /bin/busybox nc 169.254.169.254 80 >/dev/null & done; /bin/busybox sleep 1";
    const r = await sh(["docker", "exec", id, "/bin/busybox", "sh", "-c", `${hold}; /bin/busybox timeout 3 /bin/busybox wget -qO- http://169.254.169.254/eve/v1/hostname; echo "rc=$?"`], { ok: [1] });
    expect(r.out).not.toContain(APPS.other);
    expect(r.out).toMatch(/rc=[1-9]/);
    expect(await dropped()).toBeGreaterThan(before);
    expect((await fetchInApp("listed", "http://169.254.169.254/eve/v1/hostname")).out).toBe(`${APPS.listed}\n`);
    // Once its connections close, it is served again.
    const again = await waitFor("other served again", async () => {
      const x = await fetchInApp("other", "http://169.254.169.254/eve/v1/hostname");
      return x.code === 0 ? x.out : undefined;
    }, 20_000);
    expect(again).toBe(`${APPS.other}\n`);
  }, 60_000);

  test("the uplink cannot reach the server's port: the firewall drops it (its counter moves)", async () => {
    const counter = async () => Number((await dev.exec(["nft", "list", "chain", "inet", "evebox", "input"])).out.match(/tcp dport 8169 counter packets (\d+) .*drop/)?.[1] ?? NaN);
    const before = await counter();
    expect(before).toBeGreaterThanOrEqual(0);
    const r = await up.exec([busybox(), "timeout", "5", busybox(), "wget", "-qO-", "http://203.0.113.2:8169/eve/v1/network.json"], { ok: [1, 124, 143] });
    expect(r.code).not.toBe(0);
    expect(await counter()).toBeGreaterThan(before);
  }, 30_000);

  test("a config with a bad file name is refused with the field path; the running envelopes stay", async () => {
    const bad: any[] = structuredClone(ENVELOPES);
    bad[0]!.artifacts[1]!.inline.fileNameToUse = "../../etc/passwd";
    const r = await api("PUT", "/api/v1/config", doc(bad));
    expect(r.status).toBe(400);
    expect(r.body.problems).toContainEqual(expect.objectContaining({ path: "patchEnvelopes[0].artifacts[1].inline.fileNameToUse" }));
    const d = await descriptionOf("listed");
    expect(d.find((e: any) => e.PatchID === PE).BinaryBlobs.map((b: any) => b.fileName)).toEqual(["settings.yml", "hook.sh"]);
  }, 60_000);

  test("after an evebox restart, each app's envelope counters and its last custom status are still in the store, and go on from there", async () => {
    const id = await containerOf("listed");
    await sh(["docker", "exec", id, "/bin/busybox", "timeout", "10", "/bin/busybox", "wget", "-qO-", "--header", "Content-Type: application/json", "--post-data", '{"phase":"before-restart"}', "http://169.254.169.254/eve/v1/app/appCustomStatus"]);
    await descriptionOf("listed");
    const read = () => {
      const db = new Database(join(dataDir, "persist", "evebox.db"), { readonly: true });
      try {
        const usage = db.query<{ envelope: string; apiCalls: number; downloads: number }, [string]>("SELECT envelope, api_calls AS apiCalls, downloads FROM patch_envelope_usage WHERE app = ? ORDER BY envelope").all(APPS.listed);
        const status = db.query<{ data: Uint8Array }, [string]>("SELECT data FROM app_custom_status WHERE app = ?").get(APPS.listed);
        return { usage, status: status ? new TextDecoder().decode(status.data) : null };
      } finally {
        db.close();
      }
    };
    const before = read();
    expect(before.status).toBe('{"phase":"before-restart"}');
    const pe = (r: ReturnType<typeof read>) => r.usage.find((u) => u.envelope === PE)!;
    expect(pe(before).apiCalls).toBeGreaterThan(0);
    expect(pe(before).downloads).toBeGreaterThan(0);
    evebox.proc.kill("SIGTERM");
    await evebox.proc.exited;
    evebox = await startDeviceIn(dev, dataDir);
    // The new process starts from what was kept (nothing pruned at start) and counts on from it.
    await descriptionOf("listed");
    const after = read();
    expect(after.status).toBe('{"phase":"before-restart"}');
    expect(pe(after)).toEqual({ ...pe(before), apiCalls: pe(before).apiCalls + 1 });
  }, 90_000);

  test("with no Local instance left, nothing listens on the server's port (no firewall of evebox's guards it then)", async () => {
    const listens = async () => (await dev.exec(["ss", "-Hltn", "sport = :8169"])).out.trim() !== "";
    expect(await listens()).toBe(true);
    const r = await api("PUT", "/api/v1/config", { apps: [] });
    expect([200, 201]).toContain(r.status);
    await waitFor("the metadata server's port closed", async () => ((await listens()) ? undefined : true), 60_000);
    const probe = await up.exec([busybox(), "timeout", "5", busybox(), "wget", "-qO-", "http://203.0.113.2:8169/eve/v1/network.json"], { ok: [1, 124, 143] });
    expect(probe.code).toBe(1); // refused at once, not a 403 and not dropped
    // A Local instance again: it listens again, on the same port the firewall names.
    const again = await api("PUT", "/api/v1/config", doc(ENVELOPES));
    expect([200, 201]).toContain(again.status);
    await waitFor("the metadata server's port open again", async () => ((await listens()) ? true : undefined), 60_000);
    expect((await descriptionOf("listed")).map((e: any) => e.PatchID)).toContain(PE);
  }, 120_000);
});
