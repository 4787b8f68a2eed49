// The ACPI power button (what a PC's button, a hypervisor's "shut down" and QEMU's system_powerdown press): the
// kernel's button driver reports it as KEY_POWER on an input device named "Power Button"; evebox reads that
// device's events (there is no acpid) and shuts the device down in order.
import { createReadStream, existsSync, readdirSync, readFileSync } from "node:fs";

const EV_KEY = 1;
const KEY_POWER = 116;
/** struct input_event on 64-bit Linux: struct timeval (16 bytes), u16 type, u16 code, s32 value. */
const EVENT_SIZE = 24;

/** The /dev/input/event* devices named "Power Button". */
export function powerButtons(sys = "/sys"): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(`${sys}/class/input`).filter((n) => n.startsWith("event"));
  } catch {
    return [];
  }
  return names
    .filter((n) => {
      try {
        return readFileSync(`${sys}/class/input/${n}/device/name`, "utf8").trim() === "Power Button";
      } catch {
        return false;
      }
    })
    .map((n) => `/dev/input/${n}`)
    .filter((d) => existsSync(d));
}

/** Decodes input events; true when one is a press of KEY_POWER. */
export function hasPowerPress(buf: Buffer): boolean {
  for (let off = 0; off + EVENT_SIZE <= buf.length; off += EVENT_SIZE) {
    if (buf.readUInt16LE(off + 16) === EV_KEY && buf.readUInt16LE(off + 18) === KEY_POWER && buf.readInt32LE(off + 20) === 1) return true;
  }
  return false;
}

/** Calls `onPress` when a power button is pressed; returns the devices watched. */
export function watchPowerButton(onPress: () => void, sys?: string): string[] {
  const devices = powerButtons(sys);
  for (const dev of devices) {
    let pending = Buffer.alloc(0);
    createReadStream(dev, { highWaterMark: EVENT_SIZE * 16 })
      .on("data", (chunk) => {
        pending = Buffer.concat([pending, chunk as Buffer]);
        const whole = pending.length - (pending.length % EVENT_SIZE);
        if (hasPowerPress(pending.subarray(0, whole))) onPress();
        pending = pending.subarray(whole);
      })
      .on("error", () => {
        // the device went away; nothing to watch
      });
  }
  return devices;
}
