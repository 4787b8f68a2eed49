// Wiring: which slot backend (the device's partitions, files from the environment, or none), the vendor keys,
// the booted version; the console routes are in routes.ts.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { importPublicKey, type VendorKey } from "./bundle.ts";
import { BaseOs, type BaseOsHooks } from "./manager.ts";
import type { DestinationPolicy } from "../storage/destinations.ts";
import { filesBackendFromEnv, readBoardInfo, type BoardInfo, type SlotBackend } from "./slots.ts";

export { BaseOs, BaseOsRefused, notAbView } from "./manager.ts";
export { deviceBackend } from "./slots.ts";
export { takeCrashRecord } from "./pstore.ts";

export const VENDOR_KEYS_DIR = "/etc/evebox/vendor-keys";

export async function loadVendorKeys(dir: string): Promise<VendorKey[]> {
  if (!existsSync(dir)) return [];
  const keys: VendorKey[] = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".pem")).sort()) {
    keys.push(await importPublicKey(readFileSync(join(dir, f), "utf8"), f.replace(/\.pem$/, "")));
  }
  return keys;
}

/** What init/ hands over on a device: the partitions' backend, its board, release and reboot. */
export interface BaseOsDeviceWiring {
  backend: SlotBackend;
  board: BoardInfo;
  bootedVersion: string;
  keysDir: string;
  services: BaseOsHooks["services"];
  reboot: BaseOsHooks["reboot"];
  /** The kernel's last words from the boot before, when it crashed (pstore; see pstore.ts). */
  lastCrash?: string | null;
}

/**
 * The base OS part for runDevice: the device's (from init), or off-device files from EVEBOX_BASEOS_SLOTS,
 * EVEBOX_BASEOS_BOOTENV, EVEBOX_BASEOS_BOARD (board.json), EVEBOX_BASEOS_KEYS (a directory of PEM keys),
 * EVEBOX_BASEOS_VERSION; null with the reason when this is not an A/B device.
 */
export async function createBaseOs(
  wiring: BaseOsDeviceWiring | undefined,
  persistDir: string,
  version: string,
  hooks: Omit<BaseOsHooks, "services" | "reboot">,
  destinations?: DestinationPolicy,
): Promise<{ baseos: BaseOs | null; reason: string | null }> {
  try {
    if (wiring) {
      const keys = await loadVendorKeys(wiring.keysDir);
      const baseos = new BaseOs({ backend: wiring.backend, board: wiring.board, bootedVersion: wiring.bootedVersion, stateDir: join(persistDir, "baseos"), keys, hooks: { ...hooks, services: wiring.services, reboot: wiring.reboot }, lastCrash: wiring.lastCrash ?? null, destinations });
      return { baseos, reason: null };
    }
    const backend = filesBackendFromEnv();
    if (!backend) return { baseos: null, reason: "not an A/B device: no boot loader environment (host mode; see EVEBOX_BASEOS_SLOTS in src/baseos/README.md)" };
    const boardFile = process.env.EVEBOX_BASEOS_BOARD;
    if (!boardFile) throw new Error("EVEBOX_BASEOS_BOARD: the board.json of the simulated device is required with EVEBOX_BASEOS_SLOTS");
    const keys = await loadVendorKeys(process.env.EVEBOX_BASEOS_KEYS ?? VENDOR_KEYS_DIR);
    const intervalMs = Number(process.env.EVEBOX_BASEOS_CHECK_MS ?? 0) || undefined;
    const baseos = new BaseOs({ backend, board: readBoardInfo(boardFile), bootedVersion: process.env.EVEBOX_BASEOS_VERSION ?? version, stateDir: join(persistDir, "baseos"), keys, hooks, checkIntervalMs: intervalMs, destinations });
    return { baseos, reason: null };
  } catch (e) {
    return { baseos: null, reason: `base OS updates unavailable: ${(e as Error).message}` };
  }
}
