// The hardware part on the device: the inventory (sysfs, re-read when older than a few seconds), the assignment
// of adapters to the current model's apps (assign.ts) with who held what kept in the store — so a restarted
// evebox gives every app back what it held and no other app takes it meanwhile —, and what the console and the
// controller show of it.
import { readFileSync, statSync } from "node:fs";
import { networkInterfaces } from "node:os";
import type { DeviceModel } from "../config/model.ts";
import type { Store } from "../store/store.ts";
import { type Assignment, assignAdapters } from "./assign.ts";
import { readInventory } from "./inventory.ts";
import type { BundleStatus, Inventory } from "./types.ts";

const HELD_KEY = "hardware.held";
const MAX_AGE_MS = 5_000;

export interface HardwareOptions {
  /** The sysfs root: `/sys`, or a fake tree (EVEBOX_SYSFS_ROOT, tests). */
  sysRoot: string;
  store: Store;
  /** The console's HOST:PORT: the interface it listens on is never given to an app. */
  consoleListen: string | null;
  now?: () => number;
}

/** What GET /api/v1/hardware answers: every device, what it is, who uses it, why it is not assignable. */
export interface HardwareStatus {
  inventory: Inventory;
  bundles: BundleStatus[];
  /** Interfaces the device keeps, and why. */
  reserved: { ifname: string; why: string }[];
  /** Which app holds each group. */
  held: Record<string, string[]>;
}

export class Hardware {
  private inv: Inventory | null = null;
  private invAt = 0;
  private last: Assignment | null = null;
  private lastModel: DeviceModel | null = null;
  private held: Map<string, string[]>;
  private readonly now: () => number;

  constructor(private readonly o: HardwareOptions) {
    this.now = o.now ?? Date.now;
    this.held = readHeld(o.store.getSetting(HELD_KEY));
  }

  /** The sysfs root it reads (and VFIO writes). */
  get sysRoot(): string {
    return this.o.sysRoot;
  }

  inventory(): Inventory {
    if (!this.inv || this.now() - this.invAt > MAX_AGE_MS) {
      this.inv = readInventory(this.o.sysRoot);
      this.invAt = this.now();
    }
    return this.inv;
  }

  /** The interfaces the device keeps: the console's, and the management ports of the model. */
  reserved(model: DeviceModel | null): Map<string, string> {
    const out = new Map<string, string>();
    for (const i of consoleInterfaces(this.o.consoleListen)) out.set(i, "is the port the console listens on");
    for (const p of model?.ports ?? []) if (p.resolution.kind === "ifname" && !out.has(p.resolution.ifname)) out.set(p.resolution.ifname, `is the device's port ${p.name} (systemAdapterList)`);
    return out;
  }

  /** Assigns the model's adapters; `skip`: apps already in error. Holders are kept (and stored when they change). */
  assign(model: DeviceModel, skip: ReadonlySet<string> = new Set()): Assignment {
    const a = assignAdapters(model, this.inventory(), { reserved: this.reserved(model), held: this.held, skip, present: isCharDevice });
    const text = JSON.stringify([...a.held].sort());
    if (text !== JSON.stringify([...this.held].sort())) this.o.store.setSetting(HELD_KEY, JSON.stringify(Object.fromEntries(a.held)));
    this.held = a.held;
    this.last = a;
    this.lastModel = model;
    return a;
  }

  /** The last assignment, or one made now for `model` (the console before the app runtime runs). */
  status(model: DeviceModel): HardwareStatus {
    const a = this.last && this.lastModel === model ? this.last : assignAdapters(model, this.inventory(), { reserved: this.reserved(model), held: this.held, present: isCharDevice });
    return {
      inventory: this.inventory(),
      bundles: a.bundles,
      reserved: [...this.reserved(model)].map(([ifname, why]) => ({ ifname, why })),
      held: Object.fromEntries(this.held),
    };
  }
}

function readHeld(text: string | undefined): Map<string, string[]> {
  try {
    const o = JSON.parse(text ?? "{}") as Record<string, unknown>;
    return new Map(Object.entries(o).filter((e): e is [string, string[]] => Array.isArray(e[1]) && e[1].every((x) => typeof x === "string")));
  } catch {
    return new Map();
  }
}

/** A device node that exists and is a character device (a pty the config names: not in sysfs). */
export function isCharDevice(path: string): boolean {
  try {
    return statSync(path).isCharacterDevice();
  } catch {
    return false;
  }
}

/**
 * The interfaces the console is reached on: the one holding the address it listens on; when it listens on every
 * address, the interface of the default route (what a LAN user reaches it through). Loopback is not a port.
 */
export function consoleInterfaces(listen: string | null, ifs = networkInterfaces(), routes = readRoutes()): string[] {
  if (!listen) return [];
  const host = listen.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  if (host === "" || host === "0.0.0.0" || host === "::") return routes.filter((r) => r.destination === "00000000").map((r) => r.ifname).filter((v, i, a) => a.indexOf(v) === i);
  return Object.entries(ifs)
    .filter(([name, addrs]) => name !== "lo" && (addrs ?? []).some((a) => a.address === host))
    .map(([name]) => name);
}

function readRoutes(): { ifname: string; destination: string }[] {
  try {
    return readFileSync("/proc/net/route", "utf8")
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length > 2)
      .map((f) => ({ ifname: f[0]!, destination: f[1]! }));
  } catch {
    return [];
  }
}
