// The shapes the container runtime takes and gives. Kept free of dockerode types so callers
// (reconcile/, telemetry/, console/) depend on evebox's vocabulary, not the engine's.

export interface MountSpec {
  /** Host path; must exist (a volume directory made by storage/volumes). */
  source: string;
  /** Path inside the container. */
  target: string;
  readOnly: boolean;
}

export interface ContainerSpec {
  appUuid: string;
  /** The app's display name; sanitized into the container name. */
  name: string;
  /** An image reference (`host/repo:tag`, `repo@sha256:…`) or an image id. */
  image: string;
  env: Record<string, string>;
  /** Overrides the image's CMD when given. */
  cmd?: string[];
  /** Overrides the image's ENTRYPOINT when given. */
  entrypoint?: string[];
  /** Memory limit in bytes (0 or absent: none). */
  memoryBytes?: number;
  /** CPU limit in nano-CPUs (1e9 = one CPU; absent: none). */
  cpus?: number;
  mounts: MountSpec[];
  /** Engine network mode (`bridge`, `none`, a network name); absent: the engine's default. */
  networkMode?: string;
  /** Host device nodes passed in (a serial port, a USB device), and nothing else of the host's /dev. */
  devices?: { hostPath: string; containerPath: string }[];
  /** Extra labels; the runtime's own `<ns>.*` labels win over these. */
  labels?: Record<string, string>;
  /** Hash of the desired spec; absent: computed with `specGeneration(spec)`. */
  generation?: string;
}

export type ContainerState = "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead";

export interface OwnedContainer {
  appUuid: string;
  appName: string;
  id: string;
  /** Engine name without the leading slash. */
  name: string;
  state: ContainerState;
  /** When the current (or last) run started; null when never started. */
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Exit code of the last run; null while running or never started. */
  exitCode: number | null;
  oomKilled: boolean;
  generation: string;
  /** The reference the container was created from. */
  image: string;
  imageId: string;
  labels: Record<string, string>;
}

export interface LogLine {
  stream: "stdout" | "stderr";
  ts: Date;
  line: string;
}

export interface LogOptions {
  since?: Date;
  follow?: boolean;
  /** Ends a followed stream (the iterator then finishes without error). */
  signal?: AbortSignal;
}

export type ContainerEventKind = "start" | "die" | "oom";

export interface ContainerEvent {
  kind: ContainerEventKind;
  id: string;
  appUuid: string;
  name: string;
  /** Set on `die`. */
  exitCode: number | null;
  time: Date;
}

export interface WatchOptions {
  /** Called when the event stream breaks; the runtime reconnects by itself after `retryMs`. */
  onError?: (err: Error) => void;
  retryMs?: number;
}

export interface ContainerStats {
  /** Cumulative CPU time used by the container, nanoseconds. */
  cpuTotalNs: number;
  /** Cumulative host CPU time, nanoseconds (for rates between two samples). */
  systemCpuNs: number;
  onlineCpus: number;
  /** Memory in use less page cache, bytes (what `docker stats` shows). */
  memoryUsedBytes: number;
  /** The container's memory limit, or the host's memory when unlimited. */
  memoryLimitBytes: number;
  pids: number;
  /** Bytes read from and written to block devices (the engine's blkio counters); null when it has none. */
  diskReadBytes: number | null;
  diskWriteBytes: number | null;
  readAt: Date;
}

export interface PullProgress {
  /** Bytes downloaded so far over all layers whose size is known. */
  bytesDone: number;
  /** Sum of the known layer sizes; grows while layers are discovered. */
  bytesTotal: number;
  layersDone: number;
  layersTotal: number;
  /** The engine's last status line (`Downloading`, `Pull complete`, …). */
  status: string;
}

export interface PullResult {
  ref: string;
  imageId: string;
  /** `repo@sha256:…` digests the engine recorded for the image. */
  repoDigests: string[];
}

export interface ImageInfo {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  sizeBytes: number;
}

export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress?: string;
}
