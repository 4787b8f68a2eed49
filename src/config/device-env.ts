// What validation asks of the running device (validate.ts's ValidationEnv): its interfaces, its own networks and
// its memory, read from /sys and /proc of evebox's network namespace. Kept apart from validate.ts, which is pure
// (ui/ bundles it and gives it what the device reported: GET /api/v1/host).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { ValidationEnv } from "./validate.ts";

/** evebox's own links (bridges `eb…`, app interfaces `ev…`): not the device's ports. */
const OURS = /^e[bv][0-9a-f]/;

export const DEVICE_ENV: ValidationEnv = {
  interfaceExists: (name) => (existsSync("/sys/class/net") ? existsSync(`/sys/class/net/${name}`) : null),
  hostNetworks: () => hostRoutes().map((r) => r.network),
  hostMemoryKiB: () => {
    try {
      const m = /^MemTotal:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
      return m ? Number(m[1]) : null;
    } catch {
      return null;
    }
  },
};

interface Route {
  iface: string;
  network: string;
}

/** The device's IPv4 routes (not the default route, not evebox's bridges), from /proc/net/route. */
function hostRoutes(): Route[] {
  try {
    const out: Route[] = [];
    for (const line of readFileSync("/proc/net/route", "utf8").split("\n").slice(1)) {
      const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
      if (!iface || !dest || !mask || OURS.test(iface) || dest === "00000000") continue;
      const le = (h: string) => [6, 4, 2, 0].map((i) => parseInt(h.slice(i, i + 2), 16));
      const prefix = le(mask).reduce((n, b) => n + b.toString(2).replace(/0/g, "").length, 0);
      out.push({ iface, network: `${le(dest).join(".")}/${prefix}` });
    }
    return out;
  } catch {
    return [];
  }
}

/** The interface of the default route, or null. */
function defaultRouteIfname(): string | null {
  try {
    for (const line of readFileSync("/proc/net/route", "utf8").split("\n").slice(1)) {
      const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
      if (iface && dest === "00000000" && mask === "00000000") return iface;
    }
  } catch {}
  return null;
}

/** One of the device's own network ports, as the console's forms offer it. */
export interface HostPort {
  name: string;
  /** Its IPv4 networks (routes on it). */
  networks: string[];
  /** It carries the default route (what the label `uplink` names). */
  defaultRoute: boolean;
}

/** What the console's forms check a document against before the device does (the same checks, the same facts). */
export interface HostView {
  memoryKiB: number | null;
  networks: string[];
  ports: HostPort[];
}

export function hostView(env: ValidationEnv = DEVICE_ENV): HostView {
  const routes = hostRoutes();
  const dflt = defaultRouteIfname();
  let names: string[] = [];
  try {
    names = readdirSync("/sys/class/net").filter((n) => n !== "lo" && !OURS.test(n));
  } catch {}
  return {
    memoryKiB: env.hostMemoryKiB?.() ?? null,
    networks: env.hostNetworks(),
    ports: names.sort().map((name) => ({ name, networks: routes.filter((r) => r.iface === name).map((r) => r.network), defaultRoute: name === dflt })),
  };
}
