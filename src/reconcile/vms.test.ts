import { describe, expect, test } from "bun:test";
import { desiredFromConfig } from "./desired.ts";
import type { DesiredState } from "./desired.ts";
import { newAppRecord, type Observed } from "./observed.ts";
import { plan } from "./plan.ts";
import { volumeState } from "./status.ts";
import { Records } from "./records.ts";
import { desiredVms, type ObservedVms, VM_KIND, vmAppState, type VmRuntime, VmWorkload } from "./vms.ts";
import { Store } from "../store/store.ts";
import { AppLogCollector } from "./app-logs.ts";
import type { VmExit } from "../runtime/vms/types.ts";
import { buildQemuArgs, vmPaths, vmSpecHash } from "../runtime/vms/cmdline.ts";

/** The steps of the VM kind alone (with the content trees and volumes it needs, and what nothing desires). */
const planVms = (d: DesiredState, o: Observed) => plan(d, o, [VM_KIND]);

const IDS = { ds: "11111111-0000-4000-8000-000000000001", ct: "11111111-0000-4000-8000-000000000002", iso: "11111111-0000-4000-8000-000000000003", vol: "11111111-0000-4000-8000-000000000004", blank: "11111111-0000-4000-8000-000000000005", cd: "11111111-0000-4000-8000-000000000006", app: "11111111-0000-4000-8000-000000000007" };
const SHA = "ab".repeat(32);
const paths = { volumeDir: (u: string, g: number) => `/p/volumes/${u}-${g}`, blob: (s: string) => `/p/content/blobs/sha256/${s}` };

function doc(app: Record<string, unknown> = {}) {
  return {
    datastores: [{ id: IDS.ds, dType: "DsHttp", fqdn: "http://127.0.0.1:9", dpath: "images" }],
    contentInfo: [
      { uuid: IDS.ct, dsId: IDS.ds, URL: "disk.qcow2", iformat: "QCOW2", sha256: SHA, displayName: "disk" },
      { uuid: IDS.iso, dsId: IDS.ds, URL: "tools.iso", iformat: "ISO", sha256: "cd".repeat(32), displayName: "tools" },
    ],
    volumes: [
      { uuid: IDS.vol, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: IDS.ct }, maxsizebytes: "1073741824", generationCount: "2" },
      { uuid: IDS.blank, origin: { type: "VCOT_BLANK" }, maxsizebytes: "10485760", generationCount: "0" },
      { uuid: IDS.cd, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: IDS.iso } },
    ],
    apps: [
      {
        uuidandversion: { uuid: IDS.app, version: "3" },
        displayname: "router",
        activate: true,
        fixedresources: { memory: 524288, vcpus: 2, virtualizationMode: "FML" },
        volumeRefList: [{ uuid: IDS.vol }, { uuid: IDS.blank }, { uuid: IDS.cd }],
        interfaces: [{ name: "eth0" }],
        remoteConsole: true,
        userData: Buffer.from("#cloud-config\nhostname: r\n").toString("base64"),
        ...app,
      },
    ],
  };
}

function state(d = doc()): DesiredState {
  const desired: DesiredState = desiredFromConfig(d);
  desired.vms = desiredVms(desired, paths);
  return desired;
}

function observed(over: Partial<Observed> = {}, vms: Partial<ObservedVms> = {}): Observed {
  return {
    now: 1_000_000,
    bootAt: 0,
    containers: [],
    volumes: [],
    contentTrees: new Map(),
    apps: new Map(),
    startedSinceBoot: new Set(),
    fetching: new Set(),
    vms: { running: new Map(), lastExits: new Map(), unavailable: null, ...vms },
    ...over,
  };
}

const loaded = (uuid: string, url: string, sha: string) => ({
  uuid,
  state: "LOADED" as const,
  error: null,
  imageRef: null,
  imageId: null,
  sizeBytes: 1,
  progress: 100,
  attempts: 0,
  nextRetryAt: 0,
  sourceKey: JSON.stringify([`http://127.0.0.1:9/images/${url}`, sha, null]),
});

function ready(d: DesiredState): Observed {
  return observed({
    volumes: d.volumes.map((v) => ({ uuid: v.uuid, generation: v.generation })),
    contentTrees: new Map([
      [IDS.ct, loaded(IDS.ct, "disk.qcow2", SHA)],
      [IDS.iso, loaded(IDS.iso, "tools.iso", "cd".repeat(32))],
    ]),
    apps: new Map([[IDS.app, newAppRecord(IDS.app, 0, 0)]]),
  });
}

describe("desiredVms: a VM app as EVE reads it", () => {
  test("every volume a disk in order: overlay, blank qcow2, ISO as CD-ROM; KiB memory, FML → UEFI, VNC, NoCloud, NICs", () => {
    const vm = state().vms!.get(IDS.app)!;
    expect(vm.error).toBeNull();
    expect(vm.spec).toMatchObject({ memoryKiB: 524288, vcpus: 2, mode: "uefi", remoteConsole: true, cloudInitUserData: "#cloud-config\nhostname: r\n", nics: [{ kind: "user" }] });
    expect(vm.spec.disks).toEqual([
      { path: `/p/volumes/${IDS.vol}-2/disk.qcow2`, format: "qcow2", readOnly: false },
      { path: `/p/volumes/${IDS.blank}-0/disk.qcow2`, format: "qcow2", readOnly: false },
      { path: `/p/content/blobs/sha256/${"cd".repeat(32)}`, format: "raw", readOnly: true, cdrom: true },
    ]);
    expect(vm.spec.firmwareVarsPath).toBe(`/p/volumes/${IDS.vol}-2/OVMF_VARS.fd`);
    expect(vm.disks[0]!.source).toEqual({ kind: "contentTree", treeUuid: IDS.ct, sha256: SHA, format: "qcow2", cdrom: false });
  });

  test("the spec hash follows what needs a new QEMU (memory), not what does not (the app's version)", () => {
    const base = state().vms!.get(IDS.app)!.specHash;
    expect(state(doc({ uuidandversion: { uuid: IDS.app, version: "4" } })).vms!.get(IDS.app)!.specHash).toBe(base);
    expect(state(doc({ fixedresources: { memory: 262144, vcpus: 2, virtualizationMode: "FML" } })).vms!.get(IDS.app)!.specHash).not.toBe(base);
  });

  test("VmConfig beyond memory/vCPUs/mode/VNC: maxcpus, boot_mode, maxmem, cpus/pin_cpu applied, the rest reported; none set: the spec and its hash unchanged", () => {
    const plain = state().vms!.get(IDS.app)!;
    expect(plain.notApplied).toBeUndefined();
    expect(plain.spec.maxVcpus).toBeUndefined();
    const vm = state(doc({ fixedresources: { memory: 524288, maxmem: 1048576, vcpus: 2, maxcpus: 4, cpus: "0-1", pinCpu: true, virtualizationMode: "FML", bootMode: "VM_BOOT_MODE_LEGACY", bootOrder: "BOOT_ORDER_USB", kernel: "/boot/vmlinuz" } })).vms!.get(IDS.app)!;
    expect(vm.spec).toMatchObject({ vcpus: 2, maxVcpus: 4, mode: "legacy-bios", maxMemoryKiB: 1048576, cpuAffinity: { cpus: [0, 1], pinned: true } });
    expect(plain.spec.cpuAffinity).toBeUndefined();
    expect(plain.spec.maxMemoryKiB).toBeUndefined();
    expect(vm.specHash).not.toBe(plain.specHash);
    expect(vm.error).toBeNull();
    expect(vm.bootOrder).toEqual({ order: "usb", source: "controller" });
    expect(vm.spec.bootOrder).toBe("usb");
    expect(vm.notApplied).toEqual([
      "kernel: not used by evebox's VM runtime",
    ]);
    expect(buildQemuArgs(vm.spec, { paths: vmPaths("/run", IDS.app), accelerator: "tcg" }).join(" ")).toContain("-smp 2,maxcpus=4");
  });

  test("cpus: a mask alone limits QEMU's threads; pin_cpu alone is picked at start; a bad list is the app's error", () => {
    const of = (fixed: Record<string, unknown>) => state(doc({ fixedresources: { memory: 524288, vcpus: 1, ...fixed } })).vms!.get(IDS.app)!;
    expect(of({ cpus: "1" }).spec.cpuAffinity).toEqual({ cpus: [1], pinned: false });
    expect(of({ pinCpu: true }).spec.cpuAffinity).toEqual({ cpus: [], pinned: true });
    expect(of({ cpus: "0-1,x" }).error).toBe('fixedresources.cpus: "0-1,x" is not a CPU list like "0-2,5" (numbers and ranges, comma-separated)');
    expect(of({ cpus: "3-1" }).error).toMatch(/runs backwards/);
    expect(of({ maxmem: 524288 }).spec.maxMemoryKiB).toBeUndefined(); // not above memory: no hot-plug
  });

  test("boot order: the LPS's over VmConfig.boot_order over app.boot.order; not in the spec hash (next start)", () => {
    const d = (fixed: Record<string, unknown>, items: Record<string, string>[] = []) => ({ ...doc({ fixedresources: { memory: 524288, vcpus: 1, ...fixed } }), configItems: items });
    const vmOf = (x: ReturnType<typeof d>, lps?: Map<string, "usb" | "nousb">) => {
      const desired = desiredFromConfig(x);
      if (lps) desired.lpsBootOrders = lps;
      return desiredVms(desired, { volumeDir: () => "/v", blob: () => "/b" }).get(IDS.app)!;
    };
    const prop = d({}, [{ key: "app.boot.order", value: "nousb" }]);
    expect(vmOf(prop).bootOrder).toEqual({ order: "nousb", source: "device-property" });
    expect(vmOf(d({ bootOrder: "BOOT_ORDER_USB" }, [{ key: "app.boot.order", value: "nousb" }])).bootOrder).toEqual({ order: "usb", source: "controller" });
    const lps = vmOf(d({ bootOrder: "BOOT_ORDER_USB" }), new Map([[IDS.app, "nousb" as const]]));
    expect(lps.bootOrder).toEqual({ order: "nousb", source: "lps" });
    expect(lps.specHash).toBe(vmOf(d({ bootOrder: "BOOT_ORDER_USB" })).specHash);
    expect(vmOf(d({})).bootOrder).toEqual({ order: null, source: null });
  });

  test("no memory, or a disk from a container registry: a clear error on the app", () => {
    expect(state(doc({ fixedresources: { vcpus: 1 } })).vms!.get(IDS.app)!.error).toMatch(/fixedresources.memory/);
  });
});

describe("desiredVms: interfaces on network instances", () => {
  const tap = { kind: "tap" as const, ifname: "ev0123456789t0", mac: "02:00:00:00:00:01", bridge: "eb0123456789ab" };
  const withNics = (nicOf: Parameters<typeof desiredVms>[2]) => {
    const d = doc();
    const desired: DesiredState = desiredFromConfig(d);
    desired.vms = desiredVms(desired, paths, nicOf);
    return desired;
  };

  test("an interface on an instance is a tap on its bridge with the instance's MAC; one on none stays user-mode", () => {
    expect(withNics(() => tap).vms!.get(IDS.app)!.spec.nics).toEqual([tap]);
    expect(withNics(() => null).vms!.get(IDS.app)!.spec.nics).toEqual([{ kind: "user" }]);
    expect(withNics(() => tap).vms!.get(IDS.app)!.specHash).not.toBe(withNics(() => null).vms!.get(IDS.app)!.specHash);
  });

  test("while the networks are not known, the VM waits: no start, and a running one is left alone", () => {
    const d = withNics(() => undefined);
    const vm = d.vms!.get(IDS.app)!;
    expect(vm.waiting).toMatch(/networking/);
    const o = ready(d);
    expect(planVms(d, o).map((s) => s.step.kind)).not.toContain("startVm");
    const running = { running: new Map([[IDS.app, { appUuid: IDS.app, name: "router", pid: 1, specHash: "other", accelerator: "tcg" as const, startedAt: "" }]]) };
    expect(planVms(d, { ...o, vms: { ...o.vms!, ...running } })).toEqual([]);
    expect(vmAppState(d.apps[0]!, d, o)?.state).toBe("INITIAL");
  });
});

describe("planVms", () => {
  test("a new VM app: fetch its images, make its volumes, record its counters; start once the images are there", () => {
    const d = state();
    const first = planVms(d, observed()).map((s) => s.step.kind);
    expect(first.filter((k) => k === "fetchContentTree").length).toBe(2);
    expect(first.filter((k) => k === "createVolume").length).toBe(3);
    expect(first).toContain("recordCounters");
    expect(first).not.toContain("startVm");
    const steps = planVms(d, ready(d));
    expect(steps.map((s) => [s.phase, s.lane, s.step.kind])).toEqual([[1, `app:${IDS.app}`, "startVm"]]);
  });

  test("a halted VM app's disks are not fetched (HALTED meanwhile); activated, they are", () => {
    const off = state(doc({ activate: false }));
    expect(planVms(off, observed()).map((s) => s.step.kind)).not.toContain("fetchContentTree");
    expect(vmAppState(off.apps[0]!, off, observed())).toMatchObject({ state: "HALTED", error: null });
    expect(planVms(state(), observed()).filter((s) => s.step.kind === "fetchContentTree").length).toBe(2);
  });

  test("running with the desired spec: nothing; another spec: stop then start; halted: stop", () => {
    const d = state();
    const vm = d.vms!.get(IDS.app)!;
    const running = (specHash: string) => ({ running: new Map([[IDS.app, { appUuid: IDS.app, name: "router", pid: 1, specHash, accelerator: "tcg" as const, startedAt: "" }]]) });
    const o = ready(d);
    expect(planVms(d, { ...o, vms: { ...o.vms!, ...running(vm.specHash) } })).toEqual([]);
    expect(planVms(d, { ...o, vms: { ...o.vms!, ...running("other") } }).map((s) => s.step.kind)).toEqual(["stopVm", "startVm"]);
    const halted = state(doc({ activate: false }));
    expect(planVms(halted, { ...o, vms: { ...o.vms!, ...running(vm.specHash) } }).map((s) => s.step.kind)).toEqual(["stopVm"]);
  });

  test("restart and purge counters; a crash backs off; a removed app's VM is stopped", () => {
    const d = state(doc({ restart: { counter: 1 } }));
    const o = ready(d);
    const vm = d.vms!.get(IDS.app)!;
    o.vms!.running.set(IDS.app, { appUuid: IDS.app, name: "router", pid: 1, specHash: vm.specHash, accelerator: "tcg", startedAt: "" });
    expect(planVms(d, o).map((s) => s.step.kind)).toEqual(["stopVm", "startVm", "recordCounters"]);
    const p = state(doc({ purge: { counter: 1 } }));
    expect(planVms(p, o).map((s) => s.step.kind)).toEqual(["stopVm", "purgeVolumes", "startVm", "recordCounters"]);

    const crashed = ready(state());
    crashed.apps.get(IDS.app)!.crashes = 2;
    crashed.apps.get(IDS.app)!.nextStartAt = crashed.now + 2000;
    expect(planVms(state(), crashed)).toEqual([]);
    crashed.apps.get(IDS.app)!.nextStartAt = crashed.now - 1;
    expect(planVms(state(), crashed).map((s) => (s.step as { reason?: string }).reason)).toEqual(["supervised restart"]);

    const gone = state({ ...doc(), apps: [] });
    const og = observed({}, { running: new Map([[IDS.app, { appUuid: IDS.app, name: "router", pid: 1, specHash: "x", accelerator: "tcg", startedAt: "" }]]) });
    expect(planVms(gone, og).map((s) => [s.phase, s.step.kind])).toEqual([[0, "stopVm"]]);
  });
});

describe("vmAppState", () => {
  test("RUNNING with its accelerator; BROKEN after a crash with the reason and the backoff; HALTED", () => {
    const d = state();
    const app = d.apps[0]!;
    const o = ready(d);
    o.vms!.running.set(IDS.app, { appUuid: IDS.app, name: "router", pid: 42, specHash: "x", accelerator: "tcg", startedAt: "2026-01-01T00:00:00.000Z" });
    expect(vmAppState(app, d, o)).toMatchObject({ state: "RUNNING", error: null, data: { accelerator: "tcg", pid: 42 } });
    o.vms!.running.clear();
    o.apps.get(IDS.app)!.crashes = 1;
    o.apps.get(IDS.app)!.nextStartAt = o.now + 3000;
    o.vms!.lastExits.set(IDS.app, { reason: "crashed", at: o.now, ranMs: 2500, detail: "QEMU exited unexpectedly (SIGKILL)" });
    expect(vmAppState(app, d, o)).toMatchObject({ state: "BROKEN", error: "QEMU exited unexpectedly (SIGKILL) 2.5 s after start; restarting in 3 s" });
    expect(vmAppState(state(doc({ activate: false })).apps[0]!, state(doc({ activate: false })), o)).toMatchObject({ state: "HALTED" });
    expect(vmAppState(app, d, observed({}, { unavailable: "no QEMU" }))).toMatchObject({ state: "INITIAL", error: "VMs cannot run on this device: no QEMU" });
  });

  test("under TCG the app says why (KVM absent, refused, or failed by a guest); under KVM no reason", () => {
    const d = state();
    const app = d.apps[0]!;
    const o = ready(d);
    const why = "KVM failed a guest: QEMU aborted (SIGABRT) under KVM: failed to set MSR 0x10a; VMs run under TCG until the next boot";
    o.vms!.running.set(IDS.app, { appUuid: IDS.app, name: "router", pid: 42, specHash: "x", accelerator: "tcg", acceleratorReason: why, startedAt: "" });
    expect(vmAppState(app, d, o)).toMatchObject({ state: "RUNNING", error: null, data: { accelerator: "tcg", acceleratorReason: why } });
    o.vms!.running.set(IDS.app, { appUuid: IDS.app, name: "router", pid: 42, specHash: "x", accelerator: "kvm", startedAt: "" });
    expect(vmAppState(app, d, o)!.data).toMatchObject({ accelerator: "kvm", acceleratorReason: null });
  });
});

describe("volumeState", () => {
  test("a downloaded volume whose content tree was refused is in error, naming the tree and why", () => {
    const d = state();
    const vol = d.volumes.find((v) => v.uuid === IDS.vol)!;
    const o = ready(d);
    expect(volumeState(vol, d, o)).toMatchObject({ state: "CREATED_VOLUME", error: null });
    o.contentTrees.set(IDS.ct, { ...loaded(IDS.ct, "disk.qcow2", SHA), state: "LOADING", error: "the downloaded image is not a qcow2 disk image: it has an external data file (/etc/shadow)" });
    const tree = d.contentTrees.find((t) => t.uuid === IDS.ct)!;
    expect(volumeState(vol, d, o)).toEqual({
      state: "INITIAL",
      error: `content tree ${tree.name}: the downloaded image is not a qcow2 disk image: it has an external data file (/etc/shadow)`,
      data: { generation: vol.generation, sizeBytes: vol.sizeBytes },
    });
    o.contentTrees.delete(IDS.ct);
    expect(volumeState(vol, d, o)).toMatchObject({ state: "INITIAL", error: null });
  });
});

/** A QEMU stand-in with no VMs; `over` adds or replaces what a test needs (an exit listener, start, shutdown). */
function fakeVmRuntime(over: Record<string, unknown> = {}) {
  return {
    available: () => null,
    adopt: async () => [],
    probeAccelerator: async () => "tcg" as const,
    acceleratorProbe: () => null,
    list: () => [],
    close() {},
    onExit: () => () => {},
    ...over,
  };
}

describe("VmWorkload: crashes on the injected clock", () => {
  // A QEMU stand-in: no VMs, and the exit listener the workload registers, to report exits with.
  function setup() {
    const listeners: ((e: VmExit) => void)[] = [];
    const runtime = fakeVmRuntime({
      onExit(l: (e: VmExit) => void) {
        listeners.push(l);
        return () => {};
      },
    });
    const store = Store.open(":memory:");
    const clock = { t: Date.UTC(2031, 0, 1) }; // far from the wall clock
    const records = new Records(store, { clock: { now: () => clock.t, random: () => 0.5 }, crash: { baseMs: 1000, maxMs: 60_000 } });
    records.putApp(newAppRecord(IDS.app, 0, 0));
    const w = new VmWorkload({ runtime: runtime as unknown as VmRuntime, store, volumes: null as never, cache: null as never, log: () => {} });
    return { listeners, store, records, clock, w };
  }
  const crash = (): VmExit => ({ appUuid: IDS.app, name: "router", reason: "crashed", exitCode: 1, signal: null, logTail: "" }) as VmExit;

  test("the restart after a crash is due on the host's clock, with the host's backoff; the exit is dated on it too", async () => {
    const { listeners, store, records, clock, w } = setup();
    let changes = 0;
    await w.start({ records, onChange: () => changes++, onError: () => {} });
    listeners[0]!(crash());
    expect(records.app(IDS.app)).toMatchObject({ crashes: 1, nextStartAt: clock.t + 1000 });
    const exit = (await w.observe()).vms!.lastExits.get(IDS.app)!;
    expect(exit.at).toBe(clock.t);
    clock.t += 5_000;
    listeners[0]!(crash());
    expect(records.app(IDS.app)).toMatchObject({ crashes: 2, nextStartAt: clock.t + 2000 });
    expect(changes).toBe(2);
    // The app's state counts down on the same clock.
    const d = state();
    const o = ready(d);
    o.now = clock.t + 500;
    o.apps.set(IDS.app, records.app(IDS.app)!);
    o.vms!.lastExits.set(IDS.app, exit);
    expect(vmAppState(d.apps[0]!, d, o)?.error).toMatch(/restarting in 2 s$/);
    w.close();
    store.close();
  });
});

describe("VmConfig fields evebox applies beyond sizing", () => {
  const items = (kv: Record<string, string>) => Object.entries(kv).map(([key, value]) => ({ key, value }));
  const vmOf = (fixed: Record<string, unknown>, configItems: { key: string; value: string }[] = [], app: Record<string, unknown> = {}) =>
    state({ ...doc({ fixedresources: { memory: 524288, vcpus: 1, ...fixed }, ...app }), configItems } as ReturnType<typeof doc>).vms!.get(IDS.app)!;

  test("vmm_maxmem is KiB (EVE: memory + vmm_maxmem); memory.vmm.limit.MiB of the device comes first", () => {
    expect(vmOf({ vmmMaxmem: 65536 }).spec.vmmOverheadKiB).toBe(65536);
    expect(vmOf({ vmmMaxmem: 65536 }, items({ "memory.vmm.limit.MiB": "100" })).spec.vmmOverheadKiB).toBe(100 * 1024);
    expect(vmOf({}).spec.vmmOverheadKiB).toBeUndefined();
    expect(vmOf({ vmmMaxmem: 65536 }).notApplied).toBeUndefined();
  });

  test("vncDisplay/vncPasswd: TCP 5900 + display only with app.allow.vnc, VNC on and a password; otherwise reported with why", () => {
    const on = vmOf({ vncDisplay: 3, vncPasswd: "pw" }, items({ "app.allow.vnc": "true" }));
    expect(on.spec.vncTcp).toEqual({ display: 3, password: "pw" });
    expect(on.notApplied).toBeUndefined();
    const off = vmOf({ vncDisplay: 3, vncPasswd: "pw" });
    expect(off.spec.vncTcp).toBeUndefined();
    expect(off.notApplied).toEqual(["vncDisplay/vncPasswd (TCP port 5903): app.allow.vnc is false, so VNC is served only through the console (a unix socket)"]);
    expect(vmOf({ vncDisplay: 3 }, items({ "app.allow.vnc": "true" })).notApplied).toEqual([
      "vncDisplay/vncPasswd (TCP port 5903): evebox opens no VNC port without a password (vncPasswd); VNC is served only through the console",
    ]);
    expect(vmOf({ vncPasswd: "pw" }, items({ "app.allow.vnc": "true" }), { remoteConsole: false }).notApplied).toEqual(["vncDisplay/vncPasswd (TCP port 5900): VNC is off (enable_vnc / remoteConsole)"]);
    // Shown on the app while it runs: the port.
    const d = state({ ...doc({ fixedresources: { memory: 524288, vcpus: 1, vncPasswd: "pw" } }), configItems: items({ "app.allow.vnc": "true" }) } as ReturnType<typeof doc>);
    const o = ready(d);
    o.vms!.running.set(IDS.app, { appUuid: IDS.app, name: "router", pid: 42, specHash: "x", accelerator: "tcg", startedAt: "" });
    expect(vmAppState(d.apps[0]!, d, o)!.data).toMatchObject({ vncPort: 5900 });
  });

  test("enable_oem_win_license_key asks the runtime for the host's tables; what the host lacks shows in the app's notApplied", () => {
    expect(vmOf({ enableOemWinLicenseKey: true }).spec.oemLicenseTables).toBe(true);
    const d = state(doc({ fixedresources: { memory: 524288, vcpus: 1, enableOemWinLicenseKey: true, kernel: "x" } }));
    const o = ready(d);
    o.vms!.running.set(IDS.app, { appUuid: IDS.app, name: "router", pid: 42, specHash: "x", accelerator: "tcg", startedAt: "", notApplied: ["enable_oem_win_license_key: this host has no Windows license ACPI table"] });
    expect(vmAppState(d.apps[0]!, d, o)!.data.notApplied).toEqual(["kernel: not used by evebox's VM runtime", "enable_oem_win_license_key: this host has no Windows license ACPI table"]);
  });

  test("disableLogs: not in the spec (live); the app says its logs are not collected", () => {
    const vm = vmOf({ disableLogs: true });
    expect(vm.logsDisabled).toBe(true);
    expect(vm.specHash).toBe(vmOf({}).specHash);
    const d = state(doc({ fixedresources: { memory: 524288, vcpus: 2, virtualizationMode: "FML", disableLogs: true } }));
    expect(vmAppState(d.apps[0]!, d, ready(d))!.data).toMatchObject({ logs: "not collected (disableLogs)" });
  });
});

describe("enforce_network_interface_order", () => {
  const tapOf = (i: number) => ({ kind: "tap" as const, ifname: `ev0123456789t${i}`, mac: `02:00:00:00:00:0${i}`, bridge: "eb0123456789ab" });
  const vmWith = (enforce: boolean, orders: number[]) => {
    const d = desiredFromConfig(doc({ fixedresources: { memory: 524288, vcpus: 1, enforceNetworkInterfaceOrder: enforce }, interfaces: orders.map((o, i) => ({ name: `eth${i}`, interfaceOrder: o })) }));
    return desiredVms(d, paths, (_, i) => tapOf(i)).get(IDS.app)!;
  };

  test("set: the NICs in interface_order (each keeps its interface's tap and MAC); unset: config order", () => {
    const ordered = vmWith(true, [3, 1, 2]);
    expect(ordered.spec.nics.map((n) => (n as { ifname: string }).ifname)).toEqual(["ev0123456789t1", "ev0123456789t2", "ev0123456789t0"]);
    expect(ordered.nicInterfaces).toEqual([1, 2, 0]);
    expect(ordered.error).toBeNull();
    expect(ordered.notApplied).toBeUndefined();
    const plain = vmWith(false, [3, 1, 2]);
    expect(plain.spec.nics.map((n) => (n as { ifname: string }).ifname)).toEqual(["ev0123456789t0", "ev0123456789t1", "ev0123456789t2"]);
    expect(plain.nicInterfaces).toBeUndefined();
    // QEMU gets them in that order (PCI slots in command-line order).
    expect(buildQemuArgs(ordered.spec, { paths: vmPaths("/run", IDS.app), accelerator: "tcg" }).filter((a) => a.startsWith("tap,")).map((a) => a.match(/ifname=([^,]+)/)![1])).toEqual(["ev0123456789t1", "ev0123456789t2", "ev0123456789t0"]);
  });

  test("two interfaces with the same interface_order: the app's error (EVE's check)", () => {
    expect(vmWith(true, [1, 1]).error).toBe("enforce_network_interface_order: interfaces[1] (eth1) has the same interface_order (1) as interfaces[0] (eth0)");
    expect(vmWith(false, [1, 1]).error).toBeNull();
  });
});

describe("planVms: memory of a running VM", () => {
  const fixed = (memory: number, more: Record<string, unknown> = {}) => doc({ fixedresources: { memory, maxmem: 1048576, vcpus: 2, virtualizationMode: "FML", ...more } });
  /** The VM as the runtime lists it, started with `memory` KiB (and maxmem 1 GiB). */
  const runningAt = (memory: number, freeSlots = 4) => {
    const vm = state(fixed(memory)).vms!.get(IDS.app)!;
    return { appUuid: IDS.app, name: "router", pid: 1, specHash: vm.specHash, memoryHash: vmSpecHash(vm.spec, { memory: false }), memory: { kib: memory, maxKiB: 1048576, pluggedKiB: 0, freeSlots }, accelerator: "tcg" as const, startedAt: "" };
  };
  const planFor = (desiredMemory: number, running: ReturnType<typeof runningAt>) => {
    const d = state(fixed(desiredMemory));
    const o = ready(d);
    o.vms!.running.set(IDS.app, running);
    return planVms(d, o);
  };

  test("raised within maxmem: plugged, no restart; lowered or beyond maxmem: a restart that says why", () => {
    const plug = planFor(786432, runningAt(524288));
    expect(plug.map((s) => s.step.kind)).toEqual(["plugVmMemory"]);
    expect(VM_KIND.describe(plug[0]!.step)).toBe("plug memory into VM router (512 → 768 MiB, no restart)");
    const lower = planFor(262144, runningAt(524288));
    expect(lower.map((s) => s.step.kind)).toEqual(["stopVm", "startVm"]);
    expect(VM_KIND.describe(lower[1]!.step)).toBe("start VM router (the app's spec changed: memory lowered from 512 MiB to 256 MiB: memory is not taken out of a running guest: it needs a restart)");
    const full = planFor(786432, runningAt(524288, 0));
    expect(VM_KIND.describe(full[1]!.step)).toMatch(/all 4 memory slots are used: it needs a restart\)$/);
    // Beyond maxmem the config itself is refused (validate.ts); another change with memory: a plain restart.
    const other = state(fixed(786432, { vcpus: 1 }));
    const o = ready(other);
    o.vms!.running.set(IDS.app, runningAt(524288));
    expect(planVms(other, o).map((s) => VM_KIND.describe(s.step))).toEqual(["stop VM router (the app's spec changed)", "start VM router (the app's spec changed)"]);
  });

  test("raised to exactly maxmem (the config then has no headroom left): plugged, and nothing more to do after", () => {
    const d = state(fixed(1048576));
    expect(d.vms!.get(IDS.app)!.spec.maxMemoryKiB).toBeUndefined();
    const o = ready(d);
    o.vms!.running.set(IDS.app, runningAt(524288));
    expect(planVms(d, o).map((s) => s.step.kind)).toEqual(["plugVmMemory"]);
    o.vms!.running.set(IDS.app, { ...runningAt(524288), memory: { kib: 1048576, maxKiB: 1048576, pluggedKiB: 524288, freeSlots: 3 } });
    expect(planVms(d, o)).toEqual([]);
    // Another change besides: a restart as always.
    const other = state(fixed(1048576, { vcpus: 1 }));
    const o2 = ready(other);
    o2.vms!.running.set(IDS.app, runningAt(524288));
    expect(planVms(other, o2).map((s) => s.step.kind)).toEqual(["stopVm", "startVm"]);
  });

  test("the plugged VM lists the new memory: nothing more to do; the app shows it", () => {
    const d = state(fixed(786432));
    const o = ready(d);
    const now = { ...runningAt(786432), memory: { kib: 786432, maxKiB: 1048576, pluggedKiB: 262144, freeSlots: 3 } };
    o.vms!.running.set(IDS.app, now);
    expect(planVms(d, o)).toEqual([]);
    expect(vmAppState(d.apps[0]!, d, o)!.data).toMatchObject({ memory: { kib: 786432, pluggedKiB: 262144, maxKiB: 1048576 } });
  });
});

describe("VmWorkload: disableLogs", () => {
  test("a VM app with disableLogs: its serial console is not stored as its logs; set on a running VM, following stops at once", async () => {
    const store = Store.open(":memory:");
    const closed: string[] = [];
    // Each console opened: the guest's line in its history, then live output until closed.
    const runtime = {
      list: () => [],
      openConsole: (uuid: string) => {
        let ctl!: ReadableStreamDefaultController<Uint8Array>;
        const readable = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) });
        return { history: new TextEncoder().encode(`guest says hello\n`), readable, write() {}, close: () => (closed.push(uuid), ctl.close()) };
      },
    };
    const w = new VmWorkload({ runtime: runtime as unknown as VmRuntime, store, volumes: { path: () => "/v" } as never, cache: { path: () => "/b" } as never, log: () => {} });
    const logs = new AppLogCollector(store, () => {});
    const o = (pid: number) => observed({}, { running: new Map([[IDS.app, { appUuid: IDS.app, name: "router", pid, specHash: "x", accelerator: "tcg" as const, startedAt: "" }]]) });
    const fixed = (disableLogs: boolean) => doc({ fixedresources: { memory: 524288, vcpus: 2, virtualizationMode: "FML", disableLogs } });

    w.desire(desiredFromConfig(fixed(true)), undefined);
    w.followLogs(logs, o(1));
    logs.flush();
    expect(store.logsFor("app", IDS.app, 10)).toEqual([]);

    w.desire(desiredFromConfig(fixed(false)), undefined);
    w.followLogs(logs, o(1));
    logs.flush();
    expect(store.logsFor("app", IDS.app, 10).map((l) => l.message)).toEqual(["guest says hello"]);

    w.desire(desiredFromConfig(fixed(true)), undefined);
    w.followLogs(logs, o(1));
    expect(closed).toEqual([IDS.app]);
    logs.stopAll();
    await Bun.sleep(10); // the follower's end runs after the close
    store.close();
  });
});


describe("VmWorkload: PCI functions to vfio-pci and back", () => {
  const PCI = ["0000:03:00.0", "0000:03:00.1"]; // a GPU and its audio function
  function setup(store: Store, startFails = false) {
    const calls: string[] = [];
    const runtime = fakeVmRuntime({
      start: async () => {
        calls.push("start");
        if (startFails) throw new Error('app "gpu-vm" (x): QEMU exited at once');
      },
      shutdown: async () => {
        calls.push("shutdown");
        return { how: "powerdown" };
      },
    });
    const drivers = new Map<string, string | null>([
      [PCI[0]!, "amdgpu"],
      [PCI[1]!, "snd_hda_intel"],
    ]);
    const vfio = {
      bind(addresses: string[]) {
        calls.push(`bind ${addresses.join(" ")}`);
        const was = new Map(addresses.map((a) => [a, drivers.get(a) ?? null]));
        for (const a of addresses) drivers.set(a, "vfio-pci");
        return was;
      },
      release(original: ReadonlyMap<string, string | null>) {
        calls.push(`release ${[...original].map(([a, d]) => `${a}=${d}`).join(" ")}`);
        for (const [a, d] of original) drivers.set(a, d);
      },
    };
    const records = new Records(store, { clock: { now: () => Date.UTC(2031, 0, 1), random: () => 0.5 }, crash: { baseMs: 1000, maxMs: 60_000 } });
    records.putApp(newAppRecord(IDS.app, 0, 0));
    const w = new VmWorkload({ runtime: runtime as unknown as VmRuntime, store, volumes: null as never, cache: null as never, log: () => {}, vfio });
    const ctx = { records, stopTimeoutSec: 5, startedSinceBoot: new Set<string>() } as never;
    const app = { uuid: IDS.app, name: "gpu-vm" };
    const start = { kind: "startVm", app, vm: { uuid: IDS.app, name: "gpu-vm", disks: [], spec: { nics: [], passthrough: { pci: PCI } } }, reason: "new" } as never;
    const stop = { kind: "stopVm", appUuid: IDS.app } as never;
    return { calls, drivers, w, ctx, start, stop };
  }

  test("bound before QEMU starts; given back to their own drivers when the VM stops, also by an evebox started again", async () => {
    const store = Store.open(":memory:");
    const a = setup(store);
    await a.w.execute(a.start, a.ctx);
    expect(a.calls).toEqual([`bind ${PCI.join(" ")}`, "start"]);
    a.w.close();
    // The drivers they had are kept in the store: a new evebox process (a new workload, the same store) gives them back.
    const b = setup(store);
    for (const x of PCI) b.drivers.set(x, "vfio-pci");
    await b.w.execute(b.stop, b.ctx);
    expect(b.calls).toEqual(["shutdown", `release ${PCI[0]}=amdgpu ${PCI[1]}=snd_hda_intel`]);
    expect([...b.drivers.values()]).toEqual(["amdgpu", "snd_hda_intel"]);
    // Nothing is left to give back: a second stop releases nothing.
    await b.w.execute(b.stop, b.ctx);
    expect(b.calls.filter((c) => c.startsWith("release"))).toHaveLength(1);
    b.w.close();
    store.close();
  });

  test("a VM that fails to start gives its functions back at once (an app removed while failing leaves none on vfio-pci)", async () => {
    const store = Store.open(":memory:");
    const a = setup(store, true);
    await expect(a.w.execute(a.start, a.ctx)).rejects.toThrow("QEMU exited at once");
    expect(a.calls).toEqual([`bind ${PCI.join(" ")}`, "start", `release ${PCI[0]}=amdgpu ${PCI[1]}=snd_hda_intel`]);
    expect([...a.drivers.values()]).toEqual(["amdgpu", "snd_hda_intel"]);
    store.close();
  });
});
