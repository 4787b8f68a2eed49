// How evebox makes the config's VLAN sub-interfaces and bonds (config/netlinks.ts, placed on this host by
// model.ts `linksOf`): the attributes compared with what the kernel shows, and the `ip` argvs that make them.
// Shared by the network part (its `vlan`/`bond` items) and init/ports.ts (a device port on a VLAN or bond is made
// before the network part runs). Pure: no I/O. Every name in an argv is evebox's own (`evv`/`evg` + hex) or an
// interface the host reported; every value a number or checked.
import type { L2LinkSpec } from "./model.ts";

/** A bond's attributes as compared: what `ip -d -j link` shows of the bond, in the same form. */
export function bondAttrs(l: L2LinkSpec): Record<string, unknown> {
  const miimon = l.mii?.interval ?? 0;
  // The kernel rounds the delays down to a multiple of miimon.
  const round = (d: number) => (miimon ? Math.floor(d / miimon) * miimon : 0);
  return {
    mode: l.mode,
    miimon,
    updelay: round(l.mii?.updelay ?? 0),
    downdelay: round(l.mii?.downdelay ?? 0),
    arpInterval: l.arp?.interval ?? 0,
    arpTargets: [...(l.arp?.targets ?? [])].sort(),
    lacpRate: l.mode === "802.3ad" ? (l.lacpRate ?? "slow") : null,
  };
}

/** The `ip link add … type bond …` argv of a bond item (its name is evebox's; every value is a number or checked). */
export function bondCreateArgv(name: string, a: Record<string, unknown>): string[] {
  const argv = ["link", "add", name, "type", "bond", "mode", String(a.mode)];
  if (a.miimon) argv.push("miimon", String(a.miimon), "updelay", String(a.updelay), "downdelay", String(a.downdelay));
  const targets = (a.arpTargets as string[]).filter((t) => /^\d{1,3}(\.\d{1,3}){3}$/.test(t));
  if (a.arpInterval && targets.length) argv.push("arp_interval", String(a.arpInterval), "arp_ip_target", targets.join(","));
  if (a.lacpRate) argv.push("lacp_rate", String(a.lacpRate));
  return argv;
}

/** The `ip link add link … type vlan id …` argv of a VLAN item. */
export function vlanCreateArgv(name: string, a: Record<string, unknown>): string[] {
  return ["link", "add", "link", String(a.parent), "name", name, "type", "vlan", "id", String(Number(a.vlanId))];
}