// The local commands shared by the LPS client and the Local Operator Console: each once per timestamp (kept in the
// store, so also across restarts), apps by id or display name, power refused without power control (host mode).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../lib/log.ts";
import type { DeviceStatus } from "../model/status.ts";
import { Store } from "../store/store.ts";
import { applyAppCommands, applyDevCommand, readBootOrders, writeBootOrders } from "./commands.ts";

const dir = mkdtempSync(join(tmpdir(), "evebox-lps-cmds-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const A = "a0000000-0000-4000-8000-00000000000a";

test("app commands once per timestamp, by id or name; device commands once; reboot refused in host mode", () => {
  const store = Store.open(join(dir, "s.db"));
  const done: string[] = [];
  const lines: string[] = [];
  const deps = {
    status: () => ({ apps: [{ uuid: A, name: "web" }] }) as unknown as DeviceStatus,
    localCommand: (u: string, c: string) => done.push(`${u} ${c}`),
    store,
    log: { ...createLogger("lps", null, { echo: false }), log: (l: string, m: string) => lines.push(`${l} ${m}`), info: (m: string) => lines.push(`info ${m}`), warn: (m: string) => lines.push(`warn ${m}`) } as never,
  };
  applyAppCommands(deps, { appCommands: [{ displayname: "web", command: 1, timestamp: 5 }] }, "Local Operator Console");
  applyAppCommands(deps, { appCommands: [{ id: A.toUpperCase(), command: 1, timestamp: 5 }] }, "local profile server");
  applyAppCommands(deps, { appCommands: [{ id: A, command: 2, timestamp: 6 }, { id: A, command: 1, timestamp: 7 }] }, "Local Operator Console");
  expect(done).toEqual([`${A} restart`, `${A} purge`]);
  applyDevCommand(deps, { command: 3, timestamp: 9 }, "Local Operator Console");
  applyDevCommand(deps, { command: 3, timestamp: 9 }, "Local Operator Console");
  expect(lines.filter((l) => l.includes("asked to reboot"))).toEqual(["warn Local Operator Console asked to reboot: evebox is not the device's init here (host mode): it does not reboot or power off the host"]);
  writeBootOrders(store, new Map([[A, "usb"]]));
  expect([...readBootOrders(store)]).toEqual([[A, "usb"]]);
  store.close();
});
