// Checkpoints in persist/checkpoint/, under EVE's names: `lastconfig` holds the last accepted ConfigResponse
// still wrapped in its signed AuthContainer, `controllercerts` the ZControllerCert that verifies it. A boot
// without the controller runs `lastconfig` whatever its age (unless an operator sets a limit).
import { mkdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const CHECKPOINT_DIR = "checkpoint";
export const LAST_CONFIG = "lastconfig";
export const CONTROLLER_CERTS = "controllercerts";

export class Checkpoints {
  readonly dir: string;
  constructor(persistDir: string) {
    this.dir = join(persistDir, CHECKPOINT_DIR);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  write(name: string, bytes: Uint8Array): void {
    const path = join(this.dir, name);
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, bytes, { mode: 0o600 });
    renameSync(tmp, path); // atomic: a crash leaves the old checkpoint or the new one, never half of one
  }

  read(name: string): { bytes: Uint8Array; savedAt: Date } | null {
    const path = join(this.dir, name);
    try {
      return { bytes: new Uint8Array(readFileSync(path)), savedAt: statSync(path).mtime };
    } catch {
      return null;
    }
  }

  /** The controller confirmed the checkpoint is still current (304 or same hash). */
  touch(name: string): void {
    try {
      const now = new Date();
      utimesSync(join(this.dir, name), now, now);
    } catch {
      // nothing checkpointed yet
    }
  }
}
