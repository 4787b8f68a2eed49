// The base OS part (A/B slots) as the composition root holds it: one object from the start, whose answers say
// "starting" until the part has loaded, and why there is none when this is not an A/B device. The slots are the
// device's (handed over by init/), plain files named by EVEBOX_BASEOS_* (off-device), or none.
import { join } from "node:path";
import type { BaseOs, BaseOsHooks, BoardInfo, SlotBackend } from "../baseos/index.ts";
import type { BaseOsRef } from "../baseos/routes.ts";
import type { Slot } from "../baseos/bootenv.ts";
import type { PartStatus } from "../model/status.ts";
import type { DestinationPolicy } from "../storage/destinations.ts";
import type { BaseOsFileSettings } from "./env.ts";

/** What init/ knows of the device's A/B slots when evebox is PID 1 and booted from a slot. */
export interface DeviceSlots {
  booted: Slot;
  /** GRUB's environment block (on the EFI partition). */
  grubenv: string;
  /** Remounts the EFI partition read-only (true) or read-write (false), around writes of `grubenv`. */
  remountEfi(readOnly: boolean): void;
  board: BoardInfo;
  bootedVersion: string;
  keysDir?: string;
  /** pstore, mounted by init: the kernel's last words from the boot before, when it crashed. */
  pstoreDir: string | null;
  services: NonNullable<BaseOsHooks["services"]>;
  reboot: NonNullable<BaseOsHooks["reboot"]>;
}

export interface BaseOsPartOptions {
  /** On a device: init's slots; off-device: the files from the settings; neither: not an A/B device. */
  slots: DeviceSlots | null;
  files: BaseOsFileSettings | null;
  persistDir: string;
  version: string;
  destinations: DestinationPolicy;
  /** What the trial's checks look at (apps, the other parts, the controller) and where it reports. */
  hooks: Omit<BaseOsHooks, "services" | "reboot">;
}

export class BaseOsPart {
  private baseos: BaseOs | null = null;
  private reason = "starting";

  constructor(private readonly o: BaseOsPartOptions) {}

  /** Builds the manager, which continues what the last boot left (a trial to test, a fallback to report). */
  async start(): Promise<void> {
    try {
      const b = await this.build();
      if (!b) {
        this.reason = "not an A/B device: no boot loader environment (host mode; see EVEBOX_BASEOS_SLOTS in src/baseos/README.md)";
        return;
      }
      this.baseos = b;
      b.start();
    } catch (e) {
      this.reason = `base OS updates unavailable: ${(e as Error).message}`;
    }
  }

  stop(): void {
    this.baseos?.stop();
  }

  private async build(): Promise<BaseOs | null> {
    // Not an A/B device (host mode): the base OS code (bundles, signatures, slots) is not loaded at all.
    if (!this.o.slots && !this.o.files) return null;
    const { BaseOs, deviceBackend, filesBackend, loadVendorKeys, readBoardInfo, takeCrashRecord, VENDOR_KEYS_DIR } = await import("../baseos/index.ts");
    const { slots, files } = this.o;
    const stateDir = join(this.o.persistDir, "baseos");
    if (slots) {
      let lastCrash: string | null = null;
      try {
        lastCrash = slots.pstoreDir ? (takeCrashRecord(slots.pstoreDir)?.summary ?? null) : null;
        if (lastCrash) this.o.hooks.log("warn", `the boot before ended in a kernel crash: ${lastCrash}`);
      } catch (e) {
        this.o.hooks.log("warn", `cannot read the kernel's crash records (pstore): ${(e as Error).message}`);
      }
      const backend: SlotBackend = deviceBackend({ booted: slots.booted, grubenv: slots.grubenv, remountEfi: (ro) => slots.remountEfi(ro) });
      const keys = await loadVendorKeys(slots.keysDir ?? VENDOR_KEYS_DIR);
      const hooks = { ...this.o.hooks, services: slots.services, reboot: slots.reboot };
      return new BaseOs({ backend, board: slots.board, bootedVersion: slots.bootedVersion, stateDir, keys, hooks, lastCrash, destinations: this.o.destinations });
    }
    if (!files) return null;
    const backend = filesBackend({ slots: files.slots, bootenv: files.bootenv, booted: files.booted });
    const keys = await loadVendorKeys(files.keys ?? VENDOR_KEYS_DIR);
    return new BaseOs({
      backend,
      board: readBoardInfo(files.board),
      bootedVersion: files.version ?? this.o.version,
      stateDir,
      keys,
      hooks: this.o.hooks,
      checkIntervalMs: files.checkMs ?? undefined,
      destinations: this.o.destinations,
    });
  }

  /** For the console's /api/v1/baseos routes: the part, or why there is none. */
  ref(): BaseOsRef {
    return { baseos: this.baseos, reason: this.baseos ? null : this.reason };
  }

  /** The slots as EVE's ZInfoDevSW list for the controller's info message; none off an A/B device. */
  swList(): Record<string, unknown>[] | undefined {
    return this.baseos?.swList();
  }

  part(): PartStatus {
    return this.baseos ? this.baseos.part() : { name: "baseos", state: "idle", detail: this.reason };
  }
}
