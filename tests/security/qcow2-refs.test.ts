// Hardening issue, finding 2: a disk image that names other files (a qcow2 external data file, a backing file,
// json:/nbd: references, VMDK extents) must never make QEMU (or qemu-img) open a host file as the VM's disk.
// Real qemu-img and real QEMU under TCG; the "host file" is a temp file with a marker, never a real secret.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { prepareDisk, QemuRuntime, verifyDiskImage, VmError, type VmSpec } from "../../src/runtime/vms/index.ts";
import { waitFor } from "../support/wait.ts";
import { Client, cleanup, type Evebox, startEvebox, tempDataDir } from "../support/evebox.ts";
import { ensureGuestImage, GUEST_READY, type GuestImage } from "../support/guest/image.ts";
import { qemuPids } from "../support/qemu-pids.ts";
import { sh } from "../support/run.ts";

const WORK = mkdtempSync("/tmp/evebox-refs-");
const SECRET = join(WORK, "host-secret");
const MARKER = "EVEBOX-HOST-SECRET-MARKER";
let guest: GuestImage;

/** A qcow2 whose clusters are the host file `target` (data_file_raw: the guest would read and write it as is). */
async function dataFileImage(name: string, target: string): Promise<string> {
  const img = join(WORK, name);
  const scratch = join(WORK, `${name}.data`);
  await sh(["qemu-img", "create", "-q", "-f", "qcow2", "-o", `data_file=${scratch},data_file_raw=on`, img, "1M"]);
  await sh(["qemu-img", "amend", "-f", "qcow2", "-o", `data_file=${target}`, img]);
  rmSync(scratch, { force: true });
  return img;
}

/** Every process that has `path` open (by its file descriptors). */
function openers(path: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      for (const fd of readdirSync(`/proc/${d}/fd`)) {
        try {
          if (readlinkSync(`/proc/${d}/fd/${fd}`) === path) out.push(Number(d));
        } catch {}
      }
    } catch {}
  }
  return out;
}

const RUN = join(WORK, "run");
const runtimes: QemuRuntime[] = [];
function runtime(): QemuRuntime {
  const rt = new QemuRuntime({ runDir: RUN, accelerator: "tcg", cgroups: null });
  runtimes.push(rt);
  return rt;
}
let seq = 0;
const started: string[] = [];
function spec(path: string, format: VmSpec["disks"][number]["format"] = "qcow2"): VmSpec {
  const appUuid = `00000000-0000-4000-8000-0000000a${String(++seq).padStart(4, "0")}`;
  started.push(appUuid);
  return { appUuid, name: "refs", memoryKiB: 131072, vcpus: 1, mode: "legacy-bios", disks: [{ path, format, readOnly: false }], nics: [], remoteConsole: false };
}

async function refused(p: Promise<unknown>): Promise<VmError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(VmError);
    expect((err as VmError).kind).toBe("not-a-disk");
    return err as VmError;
  }
  throw new Error("expected the image to be refused, but it was accepted");
}

beforeAll(async () => {
  guest = await ensureGuestImage();
  const secret = new Uint8Array(1 << 20);
  secret.set(new TextEncoder().encode(MARKER));
  writeFileSync(SECRET, secret);
}, 300_000);

afterAll(async () => {
  for (const id of started) for (const pid of qemuPids(id)) process.kill(pid, "SIGKILL");
  for (const rt of runtimes) rt.close();
  rmSync(WORK, { recursive: true, force: true });
});

describe("runtime/vms: images that name other files are refused before qemu-img or QEMU opens them", () => {
  test("a qcow2 with an external data file (a host file): refused as qcow2 and as raw; no overlay is made", async () => {
    const evil = await dataFileImage("evil.qcow2", SECRET);
    // The attack is real: qemu-img itself reports the host file as the image's data.
    expect(JSON.parse(await Bun.$`qemu-img info --output=json ${evil}`.text())["format-specific"].data["data-file"]).toBe(SECRET);
    const asQcow2 = await refused(verifyDiskImage(evil, "qcow2"));
    expect(asQcow2.message).toContain("it has an external data file");
    expect(asQcow2.message).toContain(SECRET);
    expect((await refused(verifyDiskImage(evil, "raw"))).message).toContain("external data file");
    const dest = join(WORK, "never.qcow2");
    await refused(prepareDisk({ baseImage: evil, format: "qcow2", dest }));
    expect(existsSync(dest)).toBe(false);
  });

  test("json: and nbd: backing files, VMDK descriptors with flat extents: all refused", async () => {
    const json = join(WORK, "json-backing.qcow2");
    await sh(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", `json:{"driver":"file","filename":"${SECRET}"}`, "-F", "raw", json, "1M"]);
    expect((await refused(verifyDiskImage(json, "qcow2"))).message).toContain("it has a backing file (json:");
    const rt = runtime();
    expect((await refused(rt.start(spec(json)))).message).toContain("not an absolute file name");

    const nbd = join(WORK, "nbd-backing.qcow2");
    await sh(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "nbd://127.0.0.1:1/x", "-F", "raw", nbd, "1M"]);
    expect((await refused(verifyDiskImage(nbd, "qcow2"))).message).toContain("it has a backing file (nbd:");
    await refused(rt.start(spec(nbd)));

    const vmdk = join(WORK, "flat.vmdk");
    writeFileSync(
      vmdk,
      `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 2048 FLAT "${SECRET}" 0\n\nddb.virtualHWVersion = "4"\n`,
    );
    expect((await refused(verifyDiskImage(vmdk, "vmdk"))).message).toContain("VMDK descriptor");
    expect((await refused(verifyDiskImage(vmdk, "raw"))).message).toContain("VMDK descriptor");
    await refused(rt.start(spec(vmdk, "vmdk")));

    // QED (not an EVE format) can name a backing file too: refused before qemu-img would follow it.
    const qed = join(WORK, "backing.qed");
    await sh(["qemu-img", "create", "-q", "-f", "qed", "-u", "-b", SECRET, "-F", "raw", qed, "1M"]);
    expect((await refused(verifyDiskImage(qed, "qcow2"))).message).toContain("QED image");
    for (const id of started) expect(qemuPids(id)).toEqual([]);
    expect(openers(SECRET)).toEqual([]);
  });

  test("start(): a disk, or the backing file of an overlay, with a data file is refused and QEMU never opens the host file", async () => {
    const rt = runtime();
    const evil = await dataFileImage("direct.qcow2", SECRET);
    const direct = spec(evil);
    expect((await refused(rt.start(direct))).message).toContain("external data file");
    // An overlay over an image that is not the one verified (the cache entry changed under it).
    const over = join(WORK, "over.qcow2");
    await sh(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", evil, "-F", "qcow2", over, "1M"]);
    const overlaid = spec(over);
    expect((await refused(rt.start(overlaid))).message).toContain("external data file");
    for (const s of [direct, overlaid]) {
      expect(qemuPids(s.appUuid)).toEqual([]);
      expect(existsSync(join(RUN, "vms", s.appUuid))).toBe(false);
    }
    expect(openers(SECRET)).toEqual([]);
    // The same runtime still runs a clean overlay over a verified image (its backing stated on the command line).
    const good = join(WORK, "good.qcow2");
    await rt.prepareDisk({ baseImage: guest.disk, format: "qcow2", dest: good, sizeBytes: 64 << 20 });
    const clean = spec(good);
    expect((await rt.start(clean, { readyPattern: GUEST_READY, readyTimeoutMs: 90_000 })).state).toBe("running");
    await rt.kill(clean.appUuid);
  }, 120_000);
});

describe("end to end: a content tree serving a qcow2 whose data file is a host file", () => {
  const DS = "6b0a6b52-7f36-4a55-8c3e-2a3f5c0d1e21";
  const APP = "7c000000-0000-4000-8001-00000000e202";
  const CT = "7c000000-0000-4000-8002-00000000e202";
  const VOL = "7c000000-0000-4000-8003-00000000e202";
  let http: ReturnType<typeof Bun.serve>;
  let evebox: Evebox;
  let dataDir: string;
  let api: Client;

  beforeAll(async () => {
    const bytes = new Uint8Array(readFileSync(await dataFileImage("served.qcow2", SECRET)));
    http = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) => (new URL(req.url).pathname === "/images/disk.qcow2" ? new Response(bytes) : new Response("no", { status: 404 })),
    });
    dataDir = tempDataDir("evebox-refs-");
    evebox = await startEvebox({ dataDir });
    api = new Client(evebox.url);
    expect((await api.json("POST", "/api/v1/setup", { token: evebox.setupToken, password: "qcow2-refs-password" })).status).toBe(200);
    const sha = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    const doc = {
      datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${http.port}`, dpath: "images" }],
      contentInfo: [{ uuid: CT, dsId: DS, URL: "disk.qcow2", iformat: "QCOW2", sha256: sha, displayName: "evil-image" }],
      volumes: [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT }, displayName: "evil-disk", maxsizebytes: String(8 << 20), generationCount: "1" }],
      apps: [
        {
          uuidandversion: { uuid: APP, version: "1" },
          displayname: "evil-vm",
          activate: true,
          fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1, virtualizationMode: "HVM" },
          volumeRefList: [{ uuid: VOL }],
          interfaces: [],
        },
      ],
    };
    const r = await api.json("PUT", "/api/v1/config", doc);
    expect([200, 201]).toContain(r.status);
  }, 300_000);

  afterAll(async () => {
    for (const pid of qemuPids(APP)) process.kill(pid, "SIGKILL");
    await evebox?.stop();
    http?.stop(true);
    if (dataDir) cleanup(dataDir);
  });

  test("the content tree, its volume and the app are in error naming the tree and the data file; no QEMU opens the host file", async () => {
    let last: any;
    const st = await waitFor(
      "the evil image refused (or run)",
      async () => {
        last = (await api.json("GET", "/api/v1/status")).body;
        const app = last.apps.find((a: any) => a.uuid === APP);
        return app && (app.error || app.state === "RUNNING" || app.state === "BOOTING") ? last : undefined;
      },
      120_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}; last: ${JSON.stringify(last)}`);
    });
    const ct = st.contentTrees.find((t: any) => t.uuid === CT);
    const vol = st.volumes.find((v: any) => v.uuid === VOL);
    const app = st.apps.find((a: any) => a.uuid === APP);
    expect(ct.state).not.toBe("LOADED");
    expect(ct.error).toContain("external data file");
    expect(ct.error).toContain(SECRET);
    expect(vol.state).not.toBe("CREATED_VOLUME");
    expect(vol.error).toMatch(/^content tree evil-image: .*external data file/);
    expect(app.state).not.toBe("RUNNING");
    expect(app.error).toMatch(/^content tree evil-image: .*external data file/);
    expect(qemuPids(APP)).toEqual([]);
    expect(openers(SECRET)).toEqual([]);
    // No overlay was made over it.
    expect(existsSync(join(dataDir, "persist", "volumes", `${VOL}-1`, "disk.qcow2"))).toBe(false);
  }, 150_000);
});
