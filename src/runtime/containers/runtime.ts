import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import Docker from "dockerode";
import { runChecked } from "../../lib/run.ts";
import { engineTimeOrNull, LogDemuxer } from "./demux.ts";
import { jsonLines } from "./json-lines.ts";
import { containerName, labelKeys, type LabelKeys, specGeneration } from "./naming.ts";
import { type EngineProgressEvent, PullProgressAggregator } from "./progress.ts";
import type {
  ContainerEvent,
  ContainerEventKind,
  ContainerSpec,
  ContainerState,
  ContainerStats,
  ImageInfo,
  LogLine,
  LogOptions,
  OwnedContainer,
  PullProgress,
  PullResult,
  RegistryAuth,
  WatchOptions,
} from "./types.ts";

export const DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock";

export interface ContainerRuntimeOptions {
  /**
   * This device's id: containers are labelled `<ns>.instance=<id>` and only those are listed and
   * watched, so two evebox instances (tests, or a device image under test) share an engine safely.
   */
  instance?: string;
  /** json-file log rotation: size of one file (engine syntax, e.g. "10m") and files kept. */
  logMaxSize?: string;
  logMaxFiles?: number;
}

export interface PullOptions {
  auth?: RegistryAuth;
  signal?: AbortSignal;
}

/**
 * Containers of evebox's apps on a Docker engine. Every container it creates is labelled
 * `<ns>.managed=true` and `<ns>.app=<uuid>`; it lists, watches and touches only those, so the
 * host's own containers are left alone and containers survive evebox restarts (adoption is by label).
 */
export class ContainerRuntime {
  private readonly keys: LabelKeys;
  private readonly logMaxSize: string;
  private readonly logMaxFiles: number;
  private readonly instance: string | undefined;
  /** container id → "app <name> (<uuid>)", for error messages of id-based calls. */
  private readonly appOf = new Map<string, string>();
  /** Loads of image tarballs, one at a time: each puts the host's tags back as they were before it (loadImageTarAs). */
  private loads: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly docker: Docker = new Docker({ socketPath: DEFAULT_DOCKER_SOCKET }),
    readonly namespace = "evebox",
    options: ContainerRuntimeOptions = {},
  ) {
    this.keys = labelKeys(namespace);
    this.logMaxSize = options.logMaxSize ?? "10m";
    this.logMaxFiles = options.logMaxFiles ?? 3;
    this.instance = options.instance;
  }

  /** The label filter that selects this runtime's containers. */
  private ownedFilter(): string[] {
    const f = [`${this.keys.managed}=true`];
    if (this.instance) f.push(`${this.namespace}.instance=${this.instance}`);
    return f;
  }

  async listOwned(): Promise<OwnedContainer[]> {
    let summaries: Docker.ContainerInfo[];
    try {
      summaries = await this.docker.listContainers({ all: true, filters: { label: this.ownedFilter() } });
    } catch (err) {
      throw new Error(`list containers failed: ${engineMessage(err)}`);
    }
    const infos = await Promise.all(
      summaries.map(async (s) => {
        try {
          return await this.docker.getContainer(s.Id).inspect();
        } catch (err) {
          if (statusCode(err) === 404) return null; // removed between list and inspect
          throw new Error(`inspect container ${s.Id.slice(0, 12)} failed: ${engineMessage(err)}`);
        }
      }),
    );
    const owned: OwnedContainer[] = [];
    for (const info of infos) {
      if (!info) continue;
      const container = this.toOwned(info);
      this.appOf.set(container.id, describeApp(container.appName, container.appUuid));
      owned.push(container);
    }
    return owned;
  }

  /** Creates (does not start) the app's container; returns its id. */
  async create(spec: ContainerSpec): Promise<string> {
    const app = describeApp(spec.name, spec.appUuid);
    for (const key of Object.keys(spec.env)) {
      if (!key || key.includes("=")) throw new Error(`${app}: invalid environment variable name ${JSON.stringify(key)}`);
    }
    const name = this.instance ? `${containerName(spec)}-${this.instance.slice(0, 6)}` : containerName(spec);
    const generation = spec.generation ?? specGeneration(spec);
    const options: Docker.ContainerCreateOptions = {
      name,
      Image: spec.image,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Cmd: spec.cmd,
      Entrypoint: spec.entrypoint,
      Labels: {
        ...spec.labels,
        [this.keys.managed]: "true",
        ...(this.instance ? { [`${this.namespace}.instance`]: this.instance } : {}),
        [this.keys.app]: spec.appUuid,
        [this.keys.appName]: spec.name,
        [this.keys.generation]: generation,
      },
      HostConfig: {
        Memory: spec.memoryBytes ?? 0,
        NanoCpus: spec.cpus ?? 0,
        Mounts: spec.mounts.map((m) => ({ Type: "bind", Source: m.source, Target: m.target, ReadOnly: m.readOnly })),
        // evebox supervises restarts itself, so the engine must not race it.
        RestartPolicy: { Name: "no" },
        LogConfig: { Type: "json-file", Config: { "max-size": this.logMaxSize, "max-file": String(this.logMaxFiles) } },
        NetworkMode: spec.networkMode,
        ...(spec.devices?.length ? { Devices: spec.devices.map((d) => ({ PathOnHost: d.hostPath, PathInContainer: d.containerPath, CgroupPermissions: "rwm" })) } : {}),
      },
    };
    try {
      const container = await this.docker.createContainer(options);
      this.appOf.set(container.id, app);
      return container.id;
    } catch (err) {
      throw new Error(`${app}: create container ${name} from image ${spec.image} failed: ${engineMessage(err)}`);
    }
  }

  async start(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      if (statusCode(err) === 304) return; // already running
      throw await this.failure(id, "start", err);
    }
  }

  async stop(id: string, timeoutSec: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutSec });
    } catch (err) {
      if (statusCode(err) === 304) return; // already stopped
      throw await this.failure(id, "stop", err);
    }
  }

  /** Removes the container (killing it if running) and its anonymous volumes; a missing one is fine. */
  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      if (statusCode(err) === 404) return;
      throw await this.failure(id, "remove", err);
    } finally {
      this.appOf.delete(id);
    }
  }

  /**
   * An interactive shell in a running container (docker exec with a TTY): bytes in, bytes out.
   * Used by the console's terminal; closing it ends the shell, never the container.
   */
  async openShell(id: string, cmd: string[] = ["/bin/sh"]): Promise<{
    readable: ReadableStream<Uint8Array>;
    write(data: Uint8Array | string): void;
    resize(cols: number, rows: number): Promise<void>;
    close(): void;
  }> {
    const container = this.docker.getContainer(id);
    let exec: Docker.Exec;
    let stream: NodeJS.ReadWriteStream;
    try {
      exec = await container.exec({ Cmd: cmd, AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true, Env: ["TERM=xterm-256color"] });
      stream = (await exec.start({ hijack: true, stdin: true, Tty: true } as Docker.ExecStartOptions)) as unknown as NodeJS.ReadWriteStream;
    } catch (err) {
      throw await this.failure(id, "open a shell in", err);
    }
    let closed = false;
    const readable = new ReadableStream<Uint8Array>({
      start(ctrl) {
        stream.on("data", (b: Buffer) => {
          if (!closed) ctrl.enqueue(new Uint8Array(b));
        });
        const end = () => {
          if (closed) return;
          closed = true;
          try {
            ctrl.close();
          } catch {}
        };
        stream.on("end", end);
        stream.on("close", end);
        stream.on("error", end);
      },
      cancel() {
        closed = true;
        (stream as unknown as { destroy(): void }).destroy();
      },
    });
    return {
      readable,
      write: (data) => {
        if (!closed) stream.write(typeof data === "string" ? data : Buffer.from(data));
      },
      resize: async (cols, rows) => {
        await exec.resize({ w: cols, h: rows }).catch(() => undefined);
      },
      close: () => {
        closed = true;
        stream.end();
        (stream as unknown as { destroy(): void }).destroy();
      },
    };
  }

  async inspect(id: string): Promise<Docker.ContainerInspectInfo> {
    try {
      return await this.docker.getContainer(id).inspect();
    } catch (err) {
      throw await this.failure(id, "inspect", err);
    }
  }

  /**
   * Moves a host network interface (a CAN interface) into the running container's network namespace. The kernel
   * gives a physical one back to the host when the namespace goes (the container stops); a virtual one (vcan) is
   * destroyed with it. `ifname` is a checked interface name (config/names.ts); the argv has no shell.
   */
  async moveLinkInto(id: string, ifname: string, ip: (argv: string[]) => Promise<unknown> = (argv) => runChecked(argv, { timeoutMs: 10_000 })): Promise<void> {
    const info = await this.inspect(id);
    if (!info.State?.Running || !info.State.Pid) throw new Error(`container ${id.slice(0, 12)} is not running: no network namespace to move ${ifname} into`);
    try {
      await ip(["ip", "link", "set", "dev", ifname, "netns", String(info.State.Pid)]);
    } catch (e) {
      throw new Error(`moving ${ifname} into the container's network namespace failed: ${(e as Error).message}`);
    }
  }

  /** The container's stdout and stderr lines; with `follow`, runs until the container stops or `signal` aborts. */
  async *logs(id: string, options: LogOptions = {}): AsyncGenerator<LogLine> {
    const container = this.docker.getContainer(id);
    const base = {
      stdout: true,
      stderr: true,
      timestamps: true,
      ...(options.since ? { since: unixTimestamp(options.since) } : {}),
    };
    const demuxer = new LogDemuxer();
    if (!options.follow) {
      let buffer: Buffer;
      try {
        buffer = await container.logs({ ...base, follow: false });
      } catch (err) {
        throw await this.failure(id, "read logs of", err);
      }
      yield* demuxer.push(buffer);
      return;
    }
    if (options.signal?.aborted) return;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await container.logs({ ...base, follow: true, abortSignal: options.signal } as Docker.ContainerLogsOptions & {
        follow: true;
      });
    } catch (err) {
      if (options.signal?.aborted) return;
      throw await this.failure(id, "follow logs of", err);
    }
    const onAbort = () => (stream as unknown as { destroy(): void }).destroy();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        yield* demuxer.push(chunk);
      }
    } catch (err) {
      if (!options.signal?.aborted) throw await this.failure(id, "follow logs of", err);
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      (stream as unknown as { destroy(): void }).destroy();
    }
  }

  /**
   * Calls `onEvent` for start, die and oom of evebox's containers. Resolves once the engine's
   * event stream is open; the returned function unsubscribes. A broken stream is reopened from
   * the last event seen, so a dockerd restart loses no event that the engine kept.
   */
  async watch(onEvent: (event: ContainerEvent) => void, options: WatchOptions = {}): Promise<() => void> {
    const retryMs = options.retryMs ?? 1000;
    const controller = new AbortController();
    let lastNano = 0n;
    const open = async (): Promise<NodeJS.ReadableStream> =>
      this.docker.getEvents({
        filters: { type: ["container"], label: this.ownedFilter(), event: ["start", "die", "oom"] },
        ...(lastNano > 0n ? { since: nanoToTimestamp(lastNano) } : {}),
        abortSignal: controller.signal,
      } as Docker.GetEventsOptions);

    const pump = async (stream: NodeJS.ReadableStream) => {
      for (;;) {
        try {
          for await (const raw of jsonLines<EngineEvent>(stream as AsyncIterable<Buffer>)) {
            const nano = BigInt(raw.timeNano ?? 0);
            if (nano <= lastNano) continue; // replayed by `since` after a reconnect
            lastNano = nano;
            const event = this.toEvent(raw);
            if (!event) continue;
            try {
              onEvent(event);
            } catch (err) {
              options.onError?.(err instanceof Error ? err : new Error(String(err)));
            }
          }
          if (controller.signal.aborted) return;
          options.onError?.(new Error("container event stream ended; reconnecting"));
        } catch (err) {
          if (controller.signal.aborted) return;
          options.onError?.(new Error(`container event stream failed: ${engineMessage(err)}; reconnecting`));
        }
        for (;;) {
          await Bun.sleep(retryMs);
          if (controller.signal.aborted) return;
          try {
            stream = await open();
            break;
          } catch (err) {
            if (controller.signal.aborted) return;
            options.onError?.(new Error(`reopen container event stream failed: ${engineMessage(err)}`));
          }
        }
      }
    };

    let first: NodeJS.ReadableStream;
    try {
      first = await open();
    } catch (err) {
      throw new Error(`watch container events failed: ${engineMessage(err)}`);
    }
    void pump(first);
    return () => controller.abort();
  }

  /** One sample of the container's CPU and memory counters, without waiting for a second sample. */
  async stats(id: string): Promise<ContainerStats> {
    let raw: EngineStats;
    try {
      raw = (await this.docker
        .getContainer(id)
        .stats({ stream: false, "one-shot": true } as { stream: false })) as unknown as EngineStats;
    } catch (err) {
      throw await this.failure(id, "read stats of", err);
    }
    const mem = raw.memory_stats ?? {};
    const usage = mem.usage ?? 0;
    // Page cache is reclaimable; `docker stats` leaves it out (cgroup v1: total_inactive_file, v2: inactive_file).
    const inactive = mem.stats?.total_inactive_file ?? mem.stats?.inactive_file ?? 0;
    return {
      cpuTotalNs: raw.cpu_stats?.cpu_usage?.total_usage ?? 0,
      systemCpuNs: raw.cpu_stats?.system_cpu_usage ?? 0,
      onlineCpus: raw.cpu_stats?.online_cpus ?? 0,
      memoryUsedBytes: inactive < usage ? usage - inactive : usage,
      memoryLimitBytes: mem.limit ?? 0,
      pids: raw.pids_stats?.current ?? 0,
      ...blockIo(raw.blkio_stats?.io_service_bytes_recursive),
      readAt: engineTimeOrNull(raw.read) ?? new Date(),
    };
  }

  /**
   * Loads a `docker save` tarball as evebox's own image reference `as` (e.g. `evebox-content/<tree>:<digest>`)
   * and returns the image id. `docker load` also applies the tags written in the tarball (`busybox:latest`); those
   * belong to the host, so they are put back as they were: a tag the host did not have is removed again, a host
   * tag the load moved to the new image is pointed back at the host's image. Removing `as` later then never takes
   * a host image or tag with it.
   */
  loadImageTarAs(path: string, as: string, source?: NodeJS.ReadableStream): Promise<string> {
    // Two loads at once would each see the other's tags as new and take them away again.
    const run = this.loads.then(() => this.loadOneImageTarAs(path, as, source));
    this.loads = run.catch(() => undefined);
    return run;
  }

  private async loadOneImageTarAs(path: string, as: string, source?: NodeJS.ReadableStream): Promise<string> {
    const tagsBefore = new Map<string, string>();
    try {
      for (const img of await this.docker.listImages()) for (const t of img.RepoTags ?? []) if (t !== "<none>:<none>") tagsBefore.set(t, img.Id);
    } catch (err) {
      throw new Error(`load image tar ${path} failed: cannot list images: ${engineMessage(err)}`);
    }
    const loaded = await this.loadImageTar(path, source);
    const info = await this.imageInfo(loaded[0]!);
    if (!info) throw new Error(`load image tar ${path}: the engine reported ${loaded[0]} loaded, but it is not there`);
    const [repo, tag] = splitRef(as);
    try {
      await this.docker.getImage(info.id).tag({ repo, tag });
      for (const t of info.repoTags) {
        if (t === as) continue;
        const before = tagsBefore.get(t);
        if (before === info.id) continue; // the host had this very image under that tag already
        if (before) {
          const [r, tg] = splitRef(t);
          await this.docker.getImage(before).tag({ repo: r, tag: tg });
        } else await this.docker.getImage(t).remove({ noprune: true });
      }
    } catch (err) {
      throw new Error(`load image tar ${path}: tagging it as ${as} failed: ${engineMessage(err)}`);
    }
    return info.id;
  }

  /** Loads a `docker save` tarball (read from `source` when given: a stream made from `path`); returns the references (or ids) it loaded. */
  async loadImageTar(path: string, source?: NodeJS.ReadableStream): Promise<string[]> {
    try {
      await access(path);
    } catch {
      throw new Error(`load image tar ${path} failed: file not found`);
    }
    const loaded: string[] = [];
    try {
      const stream = await this.docker.loadImage(source ?? createReadStream(path), { quiet: true });
      for await (const msg of jsonLines<EngineProgressEvent & { stream?: string }>(stream as AsyncIterable<Buffer>)) {
        if (msg.error) throw new Error(msg.errorDetail?.message ?? msg.error);
        const m = /Loaded image(?: ID)?: (\S+)/.exec(msg.stream ?? "");
        if (m?.[1]) loaded.push(m[1]);
      }
    } catch (err) {
      throw new Error(`load image tar ${path} failed: ${engineMessage(err)}`);
    }
    if (loaded.length === 0) throw new Error(`load image tar ${path} failed: the engine loaded no image`);
    return loaded;
  }

  /** Pulls `ref` (tag or `@sha256:` digest), reporting aggregated byte progress. */
  async pull(ref: string, onProgress?: (p: PullProgress) => void, options: PullOptions = {}): Promise<PullResult> {
    const aggregator = new PullProgressAggregator();
    try {
      const stream = await this.docker.pull(ref, {
        ...(options.auth ? { authconfig: options.auth } : {}),
        ...(options.signal ? { abortSignal: options.signal } : {}),
      });
      for await (const event of jsonLines<EngineProgressEvent>(stream as AsyncIterable<Buffer>)) {
        if (event.error) throw new Error(event.errorDetail?.message ?? event.error);
        const progress = aggregator.apply(event);
        onProgress?.(progress);
      }
    } catch (err) {
      throw new Error(`pull image ${ref} failed: ${engineMessage(err)}`);
    }
    const info = await this.imageInfo(ref);
    if (!info) throw new Error(`pull image ${ref}: the engine reported success but the image is not there`);
    return { ref, imageId: info.id, repoDigests: info.repoDigests };
  }

  async imageExists(ref: string): Promise<boolean> {
    return (await this.imageInfo(ref)) !== null;
  }

  /** The local image `ref` names, or null when there is none. */
  async imageInfo(ref: string): Promise<ImageInfo | null> {
    try {
      const info = await this.docker.getImage(ref).inspect();
      return { id: info.Id, repoTags: info.RepoTags ?? [], repoDigests: info.RepoDigests ?? [], sizeBytes: info.Size };
    } catch (err) {
      if (statusCode(err) === 404) return null;
      throw new Error(`inspect image ${ref} failed: ${engineMessage(err)}`);
    }
  }

  /**
   * Removes an image only when no container at all (ours or the host's) uses it.
   * Returns false when there was no such image.
   */
  async removeImage(ref: string): Promise<boolean> {
    let imageId: string;
    try {
      imageId = (await this.docker.getImage(ref).inspect()).Id;
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw new Error(`remove image ${ref} failed: ${engineMessage(err)}`);
    }
    let users: Docker.ContainerInfo[];
    try {
      users = (await this.docker.listContainers({ all: true })).filter((c) => c.ImageID === imageId);
    } catch (err) {
      throw new Error(`remove image ${ref} failed: cannot list containers: ${engineMessage(err)}`);
    }
    if (users.length > 0) {
      const names = users.map((c) => (c.Names[0] ?? c.Id.slice(0, 12)).replace(/^\//, "")).join(", ");
      throw new Error(`remove image ${ref} refused: in use by container(s) ${names}`);
    }
    try {
      await this.docker.getImage(ref).remove();
      return true;
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw new Error(`remove image ${ref} failed: ${engineMessage(err)}`);
    }
  }

  private toOwned(info: Docker.ContainerInspectInfo): OwnedContainer {
    const labels = info.Config.Labels ?? {};
    const running = info.State.Running;
    const startedAt = engineTimeOrNull(info.State.StartedAt);
    return {
      appUuid: labels[this.keys.app] ?? "",
      appName: labels[this.keys.appName] ?? "",
      id: info.Id,
      name: info.Name.replace(/^\//, ""),
      state: info.State.Status as ContainerState,
      startedAt,
      finishedAt: engineTimeOrNull(info.State.FinishedAt),
      exitCode: running || startedAt === null ? null : info.State.ExitCode,
      oomKilled: info.State.OOMKilled,
      generation: labels[this.keys.generation] ?? "",
      image: info.Config.Image,
      imageId: info.Image,
      labels,
    };
  }

  private toEvent(raw: EngineEvent): ContainerEvent | null {
    const kind = raw.Action as ContainerEventKind;
    if (kind !== "start" && kind !== "die" && kind !== "oom") return null;
    const attrs = raw.Actor?.Attributes ?? {};
    const exit = attrs.exitCode;
    return {
      kind,
      id: raw.Actor?.ID ?? raw.id ?? "",
      appUuid: attrs[this.keys.app] ?? "",
      name: attrs.name ?? "",
      exitCode: kind === "die" && exit !== undefined ? Number(exit) : null,
      time: new Date(Number(BigInt(raw.timeNano ?? 0) / 1_000_000n) || (raw.time ?? 0) * 1000),
    };
  }

  /** An error naming the app behind a container id (looked up when not known yet). */
  private async failure(id: string, what: string, err: unknown): Promise<Error> {
    let app = this.appOf.get(id);
    if (!app && statusCode(err) !== 404) {
      try {
        const labels = (await this.docker.getContainer(id).inspect()).Config.Labels ?? {};
        if (labels[this.keys.app]) app = describeApp(labels[this.keys.appName] ?? "", labels[this.keys.app]);
      } catch {
        // the original error is what matters
      }
    }
    const subject = app ? `${app}: ` : "";
    return new Error(`${subject}${what} container ${id.slice(0, 12)} failed: ${engineMessage(err)}`);
  }
}

interface EngineEvent {
  id?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

interface EngineStats {
  read?: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  pids_stats?: { current?: number };
  blkio_stats?: { io_service_bytes_recursive?: { op?: string; value?: number }[] | null };
}

/**
 * Sums the engine's per-device block I/O entries (cgroup v1 says "Read", v2 "read"); null when the engine has
 * none (a cgroup v1 host without blkio accounting for the container's disk).
 */
function blockIo(entries: { op?: string; value?: number }[] | null | undefined): { diskReadBytes: number | null; diskWriteBytes: number | null } {
  if (!entries?.length) return { diskReadBytes: null, diskWriteBytes: null };
  let diskReadBytes = 0;
  let diskWriteBytes = 0;
  for (const e of entries ?? []) {
    const op = e.op?.toLowerCase();
    if (op === "read") diskReadBytes += e.value ?? 0;
    else if (op === "write") diskWriteBytes += e.value ?? 0;
  }
  return { diskReadBytes, diskWriteBytes };
}


function describeApp(name: string, uuid: string): string {
  return `app ${JSON.stringify(name)} (${uuid})`;
}

function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number } | null)?.statusCode;
}

/** The engine's own message when it gave one (dockerode wraps it in "(HTTP code …)"). */
export function engineMessage(err: unknown): string {
  const e = err as { json?: { message?: string } | string; message?: string; code?: string; address?: string } | null;
  if (e && typeof e.json === "object" && e.json?.message) return e.json.message.trim();
  if (e?.code === "ENOENT" || e?.code === "ECONNREFUSED") {
    return `Docker engine not reachable${e.address ? ` at ${e.address}` : ""} (${e.code})`;
  }
  return (e?.message ?? String(err)).trim();
}

/** The engine's "seconds.nanoseconds" timestamp form. */
function unixTimestamp(date: Date): string {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return `${seconds}.${String((ms - seconds * 1000) * 1_000_000).padStart(9, "0")}`;
}

function nanoToTimestamp(nano: bigint): string {
  return `${nano / 1_000_000_000n}.${String(nano % 1_000_000_000n).padStart(9, "0")}`;
}

/** "repo/name:tag" → ["repo/name", "tag"] (a registry port's colon is not the tag's). */
function splitRef(ref: string): [string, string] {
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  return colon > slash ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, "latest"];
}
