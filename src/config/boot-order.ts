// A VM's boot order as EVE decides it (docs/VM-BOOT-ORDER.md): a Local Profile Server's per-app setting first, then
// the controller's VmConfig.boot_order, then the device property app.boot.order, else the firmware's default.
// Pure: the reconciler applies it at a VM's start, the LPS client reports it (appbootinfo).
import type { AppModel } from "./model.ts";
import type { GlobalSettings } from "./settings.ts";

export type VmBootOrder = "usb" | "nousb";
export type BootOrderSource = "lps" | "controller" | "device-property";

export interface EffectiveBootOrder {
  order: VmBootOrder | null;
  source: BootOrderSource | null;
}

/** common.BootOrder by name → evebox's: BOOT_ORDER_USB → usb, BOOT_ORDER_NOUSB → nousb, anything else none. */
export function bootOrderOf(name: string | number | null | undefined): VmBootOrder | null {
  if (name === "BOOT_ORDER_USB" || name === 1) return "usb";
  if (name === "BOOT_ORDER_NOUSB" || name === 2) return "nousb";
  return null;
}

export function effectiveBootOrder(app: Pick<AppModel, "resources">, settings: Pick<GlobalSettings, "appBootOrder">, lps: VmBootOrder | null | undefined): EffectiveBootOrder {
  if (lps) return { order: lps, source: "lps" };
  const controller = bootOrderOf(app.resources.vm.bootOrder);
  if (controller) return { order: controller, source: "controller" };
  if (settings.appBootOrder) return { order: settings.appBootOrder, source: "device-property" };
  return { order: null, source: null };
}
