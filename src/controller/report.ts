// What the device tells its controller: one ZInfoMsg per object (device, app, network instance, volume,
// content tree) and a ZMetricMsg per interval, built from the device's status and the telemetry samples.
import { readFileSync } from "node:fs";
import { arch, hostname, networkInterfaces } from "node:os";
import type { DeviceStatus, ObjectStatus } from "../model/status.ts";
import type { PatchEnvelopeReport } from "../config/patch-envelopes.ts";
import type { ConfigItemStatus } from "../config/settings.ts";
import type { DeviceOpsReport } from "../model/ops.ts";
import {
  APICapability,
  AppInstMetaDataType,
  BootReason,
  EVE_PATCH_ENVELOPE_STATE,
  KubeCompUpdateStatus,
  MaintenanceModeReason,
  encodeMessage,
  MetricItemType,
  Severity,
  ZDeviceState,
  ZInfoTypes,
  ZNetworkInstanceState,
  ZSwState,
  type ZInfoMsg,
  type ZMetricMsg,
} from "../proto/index.ts";
import type { SwState } from "../model/swstate.ts";
import { hardwareInfo, type HardwareFacts, zioBundle } from "./hardware-report.ts";
import { systemAdapterInfo } from "./ports-report.ts";
import type { DevicePortsReport } from "../model/ports.ts";
import { type AppSample, cpuCount, type DeviceSample, type NetSample } from "../telemetry/metrics.ts";

export const ZINFO_MSG = "org.lfedge.eve.info.ZInfoMsg";
export const ZMETRIC_MSG = "org.lfedge.eve.metrics.ZMetricMsg";
const MB = 1024 * 1024;

/** The outbox's counters as deviceMetric.metricItems ("outbox.*"; times in Unix seconds, absent when never). */
export function outboxItems(o: OutboxStats): { key: string; type: MetricItemType; uint64Value: number }[] {
  const items = [
    { key: "outbox.undelivered", type: MetricItemType.MetricItemGauge, uint64Value: o.undelivered },
    { key: "outbox.dropped", type: MetricItemType.MetricItemCounter, uint64Value: o.dropped },
    { key: "outbox.rejected", type: MetricItemType.MetricItemCounter, uint64Value: o.rejected },
    { key: "outbox.superseded", type: MetricItemType.MetricItemCounter, uint64Value: o.superseded },
  ];
  if (o.oldest) items.push({ key: "outbox.oldest_undelivered", type: MetricItemType.MetricItemGauge, uint64Value: Math.floor(o.oldest.getTime() / 1000) });
  if (o.lastDropped) items.push({ key: "outbox.last_dropped", type: MetricItemType.MetricItemGauge, uint64Value: Math.floor(o.lastDropped.getTime() / 1000) });
  return items;
}

export function timestamp(d: Date): { seconds: number; nanos: number } {
  const ms = d.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/** EVE state name (as in /api/v1/status) → info.ZSwState; unknown names are INVALID, not guessed. */
export function swState(name: string): number {
  return toZSwState(name as SwState);
}

function niState(name: string): number {
  if (name === "RUNNING" || name === "ONLINE" || name === "ACTIVE") return ZNetworkInstanceState.ZNETINST_STATE_ONLINE;
  if (name === "ERROR" || name === "BROKEN") return ZNetworkInstanceState.ZNETINST_STATE_ERROR;
  return ZNetworkInstanceState.ZNETINST_STATE_INIT;
}

/** One object the controller gets an info message about, with the key its last-sent digest is kept under. */
export interface InfoItem {
  key: string;
  msg: ZInfoMsg;
}

export interface DeviceFacts {
  devId: string;
  version: string;
  serial: string;
  softSerial: string;
  deviceName: string;
  bootTime: Date;
  /** Total of the data directory's filesystem, bytes. */
  storageBytes: number;
  dataDir: string;
  memoryBytes: number;
  firstBoot: boolean;
  /** The base OS partitions (baseos/ swList()); absent off-device. */
  swList?: Record<string, unknown>[];
  /** Semantic faults the controller's last config had, per object uuid ("" for the device). */
  objectErrors: Map<string, string[]>;
  /** The host's I/O (hardware/): assignable adapters in ZInfoDevice, the inventory as a ZInfoHardware. */
  hardware?: HardwareFacts;
  /** Device operations (ops/): commands handled, boot reason, maintenance mode; absent: none known. */
  ops?: DeviceOpsReport;
  /** What became of each config item (config/settings.ts). */
  configItems?: ConfigItemStatus[];
  /** The config's Kubernetes cluster, refused: reported as the cluster's error. */
  cluster?: { id: string; name: string } | null;
  /** The config's patch envelopes with their states (config/patch-envelopes.ts `envelopeReport`). */
  patchEnvelopes?: PatchEnvelopeReport[];
  /** What each app last posted to its metadata server's appCustomStatus (metadata/), as it was sent. */
  appCustomStatus?: { uuid: string; data: Uint8Array }[];
  /** The device's own ports as init runs them (PID 1): ZInfoDevice.systemAdapter; absent in host mode. */
  ports?: DevicePortsReport | null;
}

/**
 * The API capability evebox claims: EVE's levels are cumulative (a device at level N handles every feature up to
 * N). evebox handles retry_update (1), the shutdown command (2) and start_delay_in_seconds (3), not EdgeView (4).
 */
export const API_CAPABILITY = APICapability.API_CAPABILITY_START_DELAY_IN_SECONDS;

const DEVICE_STATE: Record<DeviceOpsReport["state"], ZDeviceState> = {
  online: ZDeviceState.ZDEVICE_STATE_ONLINE,
  rebooting: ZDeviceState.ZDEVICE_STATE_REBOOTING,
  maintenance: ZDeviceState.ZDEVICE_STATE_MAINTENANCE_MODE,
  "preparing-poweroff": ZDeviceState.ZDEVICE_STATE_PREPARING_POWEROFF,
  "prepared-poweroff": ZDeviceState.ZDEVICE_STATE_PREPARED_POWEROFF,
};

/** Every info message the device's current status calls for (without timestamps: those are added when sent). */
export function infoItems(status: DeviceStatus, facts: DeviceFacts): InfoItem[] {
  const items: InfoItem[] = [{ key: "device", msg: { ztype: ZInfoTypes.ZiDevice, devId: facts.devId, dinfo: deviceInfo(status, facts) } }];
  // The inventory, sent when it changes (EVE sends it once per boot; the digest keeps it to that when nothing moves).
  if (facts.hardware) items.push({ key: "hardware", msg: { ztype: ZInfoTypes.ZiHardware, devId: facts.devId, hwinfo: hardwareInfo(facts.hardware.inventory) } });
  const errs = (o: ObjectStatus) => [...(o.error ? [o.error] : []), ...(facts.objectErrors.get(o.uuid) ?? [])];
  const errorInfos = (o: ObjectStatus, at: Date) => errs(o).map((description) => ({ description, severity: Severity.SEVERITY_ERROR, timestamp: timestamp(at) }));
  const changed = (o: ObjectStatus) => (typeof o.updatedAt === "string" ? new Date(o.updatedAt) : facts.bootTime);
  for (const a of status.apps) {
    items.push({
      key: `app:${a.uuid}`,
      msg: {
        ztype: ZInfoTypes.ZiApp,
        devId: facts.devId,
        ainfo: {
          AppID: a.uuid,
          appVersion: typeof a.version === "string" ? a.version : undefined,
          AppName: a.name,
          state: errs(a).length && a.state === "INITIAL" ? ZSwState.ERROR : swState(a.state),
          appErr: errorInfos(a, changed(a)),
          volumeRefs: Array.isArray(a.volumeRefs) ? (a.volumeRefs as string[]) : [],
          ...(facts.hardware ? { assignedAdapters: facts.hardware.bundles.filter((b) => b.usedBy.some((u) => u.uuid === a.uuid)).map((b) => zioBundle(b, timestamp(facts.bootTime))) } : {}),
        },
      },
    });
  }
  for (const n of status.networkInstances as ObjectStatus[]) {
    items.push({
      key: `ni:${n.uuid}`,
      msg: {
        ztype: ZInfoTypes.ZiNetworkInstance,
        devId: facts.devId,
        niinfo: {
          networkID: n.uuid,
          networkVersion: typeof n.version === "string" ? n.version : undefined,
          displayname: n.name,
          activated: n.state === "RUNNING" || n.state === "ONLINE" || n.state === "ACTIVE",
          state: errs(n).length ? ZNetworkInstanceState.ZNETINST_STATE_ERROR : niState(n.state),
          networkErr: errorInfos(n, changed(n)),
          // The network part's status names them `bridge` and `gateway` (the bridge's address).
          bridgeName: typeof n.bridge === "string" ? n.bridge : undefined,
          bridgeIPAddr: typeof n.gateway === "string" ? n.gateway : undefined,
          mtu: typeof n.mtu === "number" ? n.mtu : undefined,
          ...niRoutesInfo(n),
        },
      },
    });
  }
  for (const v of status.volumes as ObjectStatus[]) {
    const e = errs(v);
    items.push({
      key: `vol:${v.uuid}`,
      msg: {
        ztype: ZInfoTypes.ZiVolume,
        devId: facts.devId,
        vinfo: {
          uuid: v.uuid,
          displayName: v.name,
          state: e.length && v.state === "INITIAL" ? ZSwState.ERROR : swState(v.state),
          progressPercentage: typeof v.progress === "number" ? v.progress : undefined,
          volumeErr: e.length ? { description: e.join("; "), severity: Severity.SEVERITY_ERROR, timestamp: timestamp(changed(v)) } : undefined,
          resources: typeof v.sizeBytes === "number" ? { curSizeBytes: v.sizeBytes } : undefined,
        },
      },
    });
  }
  if (facts.cluster) {
    // The only cluster info message with an error: a cluster this device cannot join is reported there.
    items.push({
      key: "cluster",
      msg: {
        ztype: ZInfoTypes.ZiKubeClusterUpdateStatus,
        devId: facts.devId,
        clusterUpdateInfo: {
          clusterId: facts.cluster.id,
          status: KubeCompUpdateStatus.KUBE_COMP_UPDATE_STATUS_FAILED,
          error: { description: CLUSTER_REFUSED, severity: Severity.SEVERITY_ERROR, timestamp: timestamp(facts.bootTime) },
        },
      },
    });
  }
  // One ZInfoPatchEnvelope per envelope (EVE's ZiPatchEnvelope), keyed by id and version as EVE's are.
  for (const pe of facts.patchEnvelopes ?? []) {
    items.push({
      key: `pe:${pe.uuid}v${pe.version}`,
      msg: {
        ztype: ZInfoTypes.ZiPatchEnvelope,
        devId: facts.devId,
        patchInfo: { name: pe.name, id: pe.uuid, version: pe.version, state: EVE_PATCH_ENVELOPE_STATE[pe.state], size: pe.size, errors: pe.errors },
      },
    });
  }
  // An app's own status (EVE's ZiAppInstMetaData, type CUSTOM_STATUS), sent when it changes.
  for (const a of facts.appCustomStatus ?? []) {
    items.push({ key: `amd:${a.uuid}`, msg: { ztype: ZInfoTypes.ZiAppInstMetaData, devId: facts.devId, amdinfo: { uuid: a.uuid, type: AppInstMetaDataType.APP_INST_META_DATA_TYPE_CUSTOM_STATUS, data: a.data } } });
  }
  for (const c of status.contentTrees as ObjectStatus[]) {
    const e = errs(c);
    items.push({
      key: `ct:${c.uuid}`,
      msg: {
        ztype: ZInfoTypes.ZiContentTree,
        devId: facts.devId,
        cinfo: {
          uuid: c.uuid,
          displayName: c.name,
          sha256: typeof c.sha256 === "string" ? c.sha256 : undefined,
          state: e.length && c.state === "INITIAL" ? ZSwState.ERROR : swState(c.state),
          progressPercentage: typeof c.progress === "number" ? c.progress : undefined,
          err: e.length ? { description: e.join("; "), severity: Severity.SEVERITY_ERROR, timestamp: timestamp(changed(c)) } : undefined,
        },
      },
    });
  }
  return items;
}

/** The info sent once for an object that is gone: its id and nothing else, as EVE does for a deleted object. */
/**
 * An NI's port and routes as EVE's zedagent reports them (`ZInfoNetworkInstance.ports`, `ip_routes`): each
 * route with its gateway — the next hop in the NI's table and the port for a route out of the port, the app
 * (its UUID in `gateway_app`) for one through an app of the NI. From the NI's status (network/ `routes`).
 */
export function niRoutesInfo(n: Record<string, unknown>): { ports?: string[]; ipRoutes?: { destinationNetwork: string; gateway?: string; port?: string; gatewayApp?: string }[] } {
  const uplink = n.uplink as { label?: string } | null | undefined;
  const routes = Array.isArray(n.routes) ? (n.routes as { dst: string; via: string; to: string; tableVia?: string | null }[]) : [];
  const ifaces = Array.isArray(n.interfaces) ? (n.interfaces as { app?: string; ip?: string | null }[]) : [];
  const out: ReturnType<typeof niRoutesInfo> = {};
  if (uplink?.label) out.ports = [uplink.label];
  if (routes.length) {
    out.ipRoutes = routes.map((r) => {
      if (r.to === "apps+table") return { destinationNetwork: r.dst, ...(r.tableVia ? { gateway: r.tableVia } : {}), ...(uplink?.label ? { port: uplink.label } : {}) };
      const app = ifaces.find((i) => i.ip === r.via)?.app;
      return { destinationNetwork: r.dst, gateway: r.via, ...(app ? { gatewayApp: app } : {}) };
    });
  }
  return out;
}

export function goneInfo(key: string, devId: string): ZInfoMsg | null {
  const [kind, id] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
  switch (kind) {
    case "app":
      return { ztype: ZInfoTypes.ZiApp, devId, ainfo: { AppID: id } };
    case "ni":
      return { ztype: ZInfoTypes.ZiNetworkInstance, devId, niinfo: { networkID: id } };
    case "vol":
      return { ztype: ZInfoTypes.ZiVolume, devId, vinfo: { uuid: id } };
    case "ct":
      return { ztype: ZInfoTypes.ZiContentTree, devId, cinfo: { uuid: id } };
  }
  return null;
}

export const CLUSTER_REFUSED = "Kubernetes clusters are not supported on this device";

/** EVE's configItemStatus: the items evebox knows (with the error of a refused value), and the others with why. */
function configItemStatus(items: ConfigItemStatus[]): NonNullable<NonNullable<ZInfoMsg["dinfo"]>["configItemStatus"]> {
  const known: Record<string, { value: string; error?: string }> = {};
  const unknown: Record<string, { value: string; error?: string }> = {};
  for (const i of items) {
    if (i.state === "applied" || i.state === "invalid") known[i.key] = { value: i.value, ...(i.detail ? { error: i.detail } : {}) };
    else unknown[i.key] = { value: i.value, ...(i.detail ? { error: i.detail } : {}) };
  }
  return { configItems: known, unknownConfigItems: unknown };
}

function deviceInfo(status: DeviceStatus, f: DeviceFacts): NonNullable<ZInfoMsg["dinfo"]> {
  const ops = f.ops;
  const machine = ({ x64: "x86_64", arm64: "aarch64", arm: "armv7l", riscv64: "riscv64" } as Record<string, string>)[arch()] ?? arch();
  const network = Object.entries(networkInterfaces())
    .filter(([name]) => name !== "lo")
    .map(([name, addrs]) => ({
      devName: name,
      macAddr: addrs?.find((a) => a.mac && a.mac !== "00:00:00:00:00:00")?.mac,
      IPAddrs: (addrs ?? []).map((a) => a.address),
      ipv4Up: (addrs ?? []).some((a) => a.family === "IPv4"),
      defaultRouters: defaultRouters(name),
      uplink: defaultRouters(name).length > 0,
    }));
  const dmi = (f: string) => readDmi(f);
  return {
    machineArch: machine,
    cpuArch: machine,
    platform: "evebox",
    ncpu: cpuCount(),
    memory: Math.round(f.memoryBytes / MB),
    storage: Math.round(f.storageBytes / MB),
    minfo: {
      manufacturer: dmi("sys_vendor"),
      productName: dmi("product_name"),
      version: dmi("product_version"),
      serialNumber: f.serial || undefined,
      UUID: dmi("product_uuid"),
      biosVendor: dmi("bios_vendor"),
      biosVersion: dmi("bios_version"),
      biosReleaseDate: dmi("bios_date"),
    },
    network,
    storageList: [{ mountPath: f.dataDir, total: Math.round(f.storageBytes / MB), storageLocation: true }],
    bootTime: timestamp(f.bootTime),
    swList: (f.swList as NonNullable<ZInfoMsg["dinfo"]>["swList"]) ?? [
      {
        activated: true,
        partitionLabel: "IMGA",
        partitionState: "active",
        status: ZSwState.INSTALLED,
        shortVersion: f.version,
        longVersion: `evebox ${f.version} (bun ${Bun.version})`,
      },
    ],
    HostName: hostname(),
    lastRebootReason: ops ? ops.lastBoot.text : f.firstBoot ? "first boot of evebox on this device" : "unknown",
    lastBootReason: ops ? BootReason[ops.lastBoot.reason] : f.firstBoot ? BootReason.BOOT_REASON_FIRST : BootReason.BOOT_REASON_UNKNOWN,
    lastRebootTime: ops?.lastBoot.rebootTime ? timestamp(new Date(ops.lastBoot.rebootTime)) : undefined,
    rebootConfigCounter: ops?.rebootCounter,
    shutdownConfigCounter: ops?.shutdownCounter,
    rebootInprogress: ops?.rebootInProgress,
    maintenanceMode: ops?.maintenance.on,
    maintenanceModeReasons: ops?.maintenance.on ? [MaintenanceModeReason.MAINTENANCE_MODE_REASON_USER_REQUESTED] : [],
    state: ops ? DEVICE_STATE[ops.state] : ZDeviceState.ZDEVICE_STATE_ONLINE,
    apiCapability: API_CAPABILITY,
    configItemStatus: configItemStatus(f.configItems ?? []),
    deviceName: f.deviceName,
    ...(f.hardware ? { assignableAdapters: f.hardware.bundles.map((b) => zioBundle(b, timestamp(f.bootTime))) } : {}),
    ...(f.ports?.configs.length ? { systemAdapter: systemAdapterInfo(f.ports) } : {}),
  };
}

function defaultRouters(ifname: string): string[] {
  let text = "";
  try {
    text = readFileSync("/proc/net/route", "utf8");
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[0] !== ifname || f[1] !== "00000000" || !f[2] || f[2] === "00000000") continue;
    const g = Number.parseInt(f[2], 16);
    out.push([g & 255, (g >> 8) & 255, (g >> 16) & 255, (g >>> 24) & 255].join("."));
  }
  return out;
}

function readDmi(field: string): string | undefined {
  try {
    return readFileSync(`/sys/class/dmi/id/${field}`, "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface OutboxStats {
  undelivered: number;
  oldest: Date | null;
  dropped: number;
  rejected: number;
  superseded: number;
  lastDropped: Date | null;
}

export interface LinkStats {
  failures: number;
  success: number;
  lastFailure: Date | null;
  lastSuccess: Date | null;
  authVerifyFailure: number;
}

export function metricMsg(
  devId: string,
  s: DeviceSample,
  apps: AppSample[],
  extra: { outbox: OutboxStats; link: LinkStats; lastReceivedConfig: Date | null; lastProcessedConfig: Date | null },
): ZMetricMsg {
  const used = s.memory.totalBytes - s.memory.availableBytes;
  const net = (n: NetSample) => ({
    iName: n.name,
    txBytes: n.txBytes,
    rxBytes: n.rxBytes,
    txDrops: n.txDrops,
    rxDrops: n.rxDrops,
    txPkts: n.txPackets,
    rxPkts: n.rxPackets,
    txErrors: n.txErrors,
    rxErrors: n.rxErrors,
  });
  const ts = (d: Date | null) => (d ? timestamp(d) : undefined);
  return {
    devID: devId,
    atTimeStamp: timestamp(s.at),
    dm: {
      memory: {
        usedMem: Math.round(used / MB),
        availMem: Math.round(s.memory.availableBytes / MB),
        usedPercentage: (100 * used) / (s.memory.totalBytes || 1),
        availPercentage: (100 * s.memory.availableBytes) / (s.memory.totalBytes || 1),
      },
      deviceMemory: { memoryMB: Math.round(s.memory.totalBytes / MB) },
      network: s.network.map(net),
      disk: s.disks.map((d) => ({
        disk: d.disk,
        mountPath: d.mountPath,
        readBytes: d.readBytes,
        writeBytes: d.writeBytes,
        readCount: d.readCount,
        writeCount: d.writeCount,
        total: d.totalBytes !== undefined ? Math.round(d.totalBytes / MB) : undefined,
        used: d.usedBytes !== undefined ? Math.round(d.usedBytes / MB) : undefined,
        free: d.freeBytes !== undefined ? Math.round(d.freeBytes / MB) : undefined,
      })),
      cpuMetric: {
        upTime: timestamp(s.bootTime),
        total: Math.round(s.cpu.busyNs / 1e9),
        systemTotal: Math.round(s.cpu.totalNs / 1e9),
        totalNs: Math.round(s.cpu.busyNs),
      },
      zedcloud: [
        {
          ifName: "",
          failures: extra.link.failures,
          success: extra.link.success,
          lastFailure: ts(extra.link.lastFailure),
          lastSuccess: ts(extra.link.lastSuccess),
          authVerifyFailure: extra.link.authVerifyFailure,
        },
      ],
      lastReceivedConfig: ts(extra.lastReceivedConfig),
      lastProcessedConfig: ts(extra.lastProcessedConfig),
      // The outbox has no message of its own upstream: its state goes as open-ended metric items.
      metricItems: outboxItems(extra.outbox),
    },
    am: apps.map((a) => ({
      AppID: a.uuid,
      AppName: a.name,
      appVersion: a.version,
      cpu: a.cpuNs !== undefined ? { total: Math.round(a.cpuNs / 1e9), totalNs: Math.round(a.cpuNs), upTime: a.startedAt ? timestamp(a.startedAt) : undefined } : undefined,
      memory:
        a.memoryUsedBytes !== undefined
          ? {
              usedMem: Math.round(a.memoryUsedBytes / MB),
              availMem: a.memoryLimitBytes ? Math.round((a.memoryLimitBytes - a.memoryUsedBytes) / MB) : undefined,
              usedPercentage: a.memoryLimitBytes ? (100 * a.memoryUsedBytes) / a.memoryLimitBytes : undefined,
            }
          : undefined,
      appMemory: a.memoryUsedBytes !== undefined ? { usedMB: Math.round(a.memoryUsedBytes / MB), allocatedMB: a.memoryLimitBytes ? Math.round(a.memoryLimitBytes / MB) : undefined } : undefined,
      network: (a.network ?? []).map(net),
      ...(a.patchEnvelopes?.length ? { patchEnvelope: a.patchEnvelopes.map((p) => ({ uuid: p.uuid, version: p.version, patchApiCallCount: p.apiCalls, downloadCount: p.downloads })) } : {}),
    })),
  };
}

export function encodeInfo(msg: ZInfoMsg, at: Date): Uint8Array {
  return encodeMessage(ZINFO_MSG, { ...msg, atTimeStamp: timestamp(at) });
}

export function encodeMetrics(msg: ZMetricMsg): Uint8Array {
  return encodeMessage(ZMETRIC_MSG, msg);
}

/** A digest of what an info message says, timestamps aside, to send it only when it changed. */
export function infoDigest(msg: ZInfoMsg): string {
  return new Bun.CryptoHasher("sha256").update(encodeMessage(ZINFO_MSG, msg)).digest("hex");
}

/** The wire value for ZInfo messages (info.proto's ZSwState); BROKEN reports as HALTED with the error, as EVE does. */
export function toZSwState(s: SwState): number {
  switch (s) {
    case "DOWNLOADING":
      return ZSwState.DOWNLOAD_STARTED;
    case "BROKEN":
      return ZSwState.HALTED;
    default:
      return (ZSwState as unknown as Record<string, number>)[s] ?? ZSwState.INVALID;
  }
}
