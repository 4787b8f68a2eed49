import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { MountSpec } from "../runtime/containers/types.ts";

// Container volumes are host directories `<persist>/volumes/<volume uuid>-<generationCount>`,
// bind-mounted into the app's container. EVE bumps generationCount to ask for a fresh volume, so
// each generation is its own directory. What evebox knows about a volume sits beside it in
// `<uuid>-<generation>.json`, outside what the container sees.

export interface VolumeSpec {
  uuid: string;
  generationCount: number;
  /** The size the config asked for; recorded, not enforced (a host directory has no quota). */
  sizeBytes?: number;
  displayName?: string;
}

export interface Volume {
  uuid: string;
  generationCount: number;
  path: string;
  sizeBytes: number;
  displayName: string;
  createdAt: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class VolumeStore {
  readonly dir: string;

  constructor(persistDir: string) {
    this.dir = join(persistDir, "volumes");
  }

  path(uuid: string, generationCount: number): string {
    return join(this.dir, volumeName(uuid, generationCount));
  }

  /** Creates the volume's directory, or returns the existing one unchanged. */
  async create(spec: VolumeSpec): Promise<Volume> {
    const name = volumeName(spec.uuid, spec.generationCount);
    const existing = await this.get(spec.uuid, spec.generationCount);
    if (existing) return existing;
    const volume: Volume = {
      uuid: spec.uuid.toLowerCase(),
      generationCount: spec.generationCount,
      path: join(this.dir, name),
      sizeBytes: spec.sizeBytes ?? 0,
      displayName: spec.displayName ?? "",
      createdAt: new Date(),
    };
    try {
      await mkdir(volume.path, { recursive: true });
      const meta = join(this.dir, `${name}.json`);
      await writeFile(`${meta}.tmp`, JSON.stringify({ ...volume, createdAt: volume.createdAt.toISOString() }));
      await rename(`${meta}.tmp`, meta);
    } catch (err) {
      throw new Error(`volume ${name}: create failed: ${(err as Error).message}`);
    }
    return volume;
  }

  async get(uuid: string, generationCount: number): Promise<Volume | null> {
    const name = volumeName(uuid, generationCount);
    const path = join(this.dir, name);
    const info = await lstat(path).catch(() => null);
    if (!info?.isDirectory()) return null;
    let meta: Partial<Volume> & { createdAt?: string } = {};
    try {
      meta = JSON.parse(await readFile(join(this.dir, `${name}.json`), "utf8"));
    } catch {
      // a directory without metadata (made by hand or an older evebox) is still a volume
    }
    return {
      uuid: uuid.toLowerCase(),
      generationCount,
      path,
      sizeBytes: typeof meta.sizeBytes === "number" ? meta.sizeBytes : 0,
      displayName: typeof meta.displayName === "string" ? meta.displayName : "",
      createdAt: meta.createdAt ? new Date(meta.createdAt) : info.birthtime,
    };
  }

  /** Empties the volume: its directory is deleted and made again, metadata kept. */
  async purge(uuid: string, generationCount: number): Promise<Volume> {
    const volume = await this.get(uuid, generationCount);
    const name = volumeName(uuid, generationCount);
    if (!volume) throw new Error(`volume ${name}: purge failed: no such volume`);
    try {
      // Rename first so a crash midway never leaves a half-emptied volume under the live name.
      const doomed = join(this.dir, `.purge-${name}-${Date.now()}`);
      await rename(volume.path, doomed);
      await mkdir(volume.path);
      await rm(doomed, { recursive: true, force: true });
    } catch (err) {
      throw new Error(`volume ${name}: purge failed: ${(err as Error).message}`);
    }
    return volume;
  }

  /** Deletes the volume and its metadata; a missing volume is fine. */
  async remove(uuid: string, generationCount: number): Promise<void> {
    const name = volumeName(uuid, generationCount);
    try {
      await rm(join(this.dir, name), { recursive: true, force: true });
      await rm(join(this.dir, `${name}.json`), { force: true });
    } catch (err) {
      throw new Error(`volume ${name}: remove failed: ${(err as Error).message}`);
    }
  }

  async list(): Promise<Volume[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    // Left over by a purge that crashed.
    await Promise.all(
      names.filter((n) => n.startsWith(".purge-")).map((n) => rm(join(this.dir, n), { recursive: true, force: true })),
    );
    const volumes: Volume[] = [];
    for (const name of names) {
      const m = /^([0-9a-f-]{36})-(\d+)$/i.exec(name);
      if (!m?.[1] || !UUID.test(m[1])) continue;
      const volume = await this.get(m[1], Number(m[2]));
      if (volume) volumes.push(volume);
    }
    return volumes.sort((a, b) => a.uuid.localeCompare(b.uuid) || a.generationCount - b.generationCount);
  }

  /** Bytes used inside the volume (walks it: call it for status, not in a hot loop). */
  async usedBytes(uuid: string, generationCount: number): Promise<number> {
    return du(this.path(uuid, generationCount));
  }

  /** The bind mount of this volume for a ContainerSpec. */
  mount(volume: Pick<Volume, "path">, target: string, readOnly = false): MountSpec {
    return { source: volume.path, target, readOnly };
  }
}

function volumeName(uuid: string, generationCount: number): string {
  if (!UUID.test(uuid)) throw new Error(`volume: invalid uuid ${JSON.stringify(uuid)}`);
  if (!Number.isSafeInteger(generationCount) || generationCount < 0) {
    throw new Error(`volume ${uuid}: invalid generationCount ${generationCount}`);
  }
  return `${uuid.toLowerCase()}-${generationCount}`;
}

async function du(path: string): Promise<number> {
  let total = 0;
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) total += await du(child);
    else total += (await lstat(child).catch(() => null))?.size ?? 0;
  }
  return total;
}
