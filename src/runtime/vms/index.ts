export { type AcceleratorProbe, probeAccelerator, runProbeGuest } from "./accel.ts";
export { findCgroup2Root, VmCgroups } from "./cgroup.ts";
export { buildQemuArgs, DEFAULT_FIRMWARE, type Firmware, memoryPlugProblem, type QemuArgsOptions, qemuValue, VNC_BASE_PORT, type VmPaths, vmPaths, vmSpecHash } from "./cmdline.ts";
export { ByteRing, ConsoleBridge, ConsoleTimeout } from "./console.ts";
export {
  checkDiskBeforeStart,
  createBlankDisk,
  type DiskBacking,
  type HeaderFacts,
  type ImageInfo,
  imageInfo,
  type ImageReference,
  makeNoCloudSeed,
  type PreparedDisk,
  prepareDisk,
  type PrepareDiskOptions,
  readImageHeader,
  verifyDiskImage,
} from "./disks.ts";
export { VmError, type VmErrorKind } from "./errors.ts";
export { cpuListText, decodeUserData, diskFormatOfContentTree, firmwareModeOf, parseCpuList, vmResourcesOf } from "./eve.ts";
export { QmpClient, QmpError, type QmpEvent } from "./qmp.ts";
export { isOurQemu, LICENSE_TABLES, logTail, QemuRuntime, type QemuRuntimeOptions } from "./runtime.ts";
export type * from "./types.ts";
export { type HostResources, hostResources, hostProblems, specProblems } from "./validate.ts";
