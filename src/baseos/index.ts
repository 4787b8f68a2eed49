// What the composition root (device/baseos.ts) builds the part from: the manager, the slot backends, the vendor
// keys, the crash record of the boot before. The console routes are in routes.ts.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { importPublicKey, type VendorKey } from "./bundle.ts";

export { BaseOs, BaseOsRefused, notAbView, type BaseOsHooks } from "./manager.ts";
export { deviceBackend, filesBackend, readBoardInfo, type BoardInfo, type SlotBackend } from "./slots.ts";
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
