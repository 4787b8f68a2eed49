import { describe, expect, test } from "bun:test";
import { ALLOW_LOCAL_ENV, ALLOW_LOCAL_SETTING, datastorePolicy, DestinationRefused, localAddressReason, resolveDestination } from "./destinations.ts";

describe("local datastore destinations", () => {
  test("loopback, link-local, unspecified (IPv4, IPv6, v4-mapped) and the device's own addresses are local; others are not", () => {
    const own = ["192.0.2.2", "fd00::2"];
    for (const a of ["127.0.0.1", "127.8.9.10", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::ffff:7f00:1"]) expect(localAddressReason(a, own)).toBe("a loopback address");
    for (const a of ["169.254.169.254", "fe80::1", "FEBF::1%eth0", "::ffff:169.254.1.1"]) expect(localAddressReason(a, own)).toBe("a link-local address");
    for (const a of ["0.0.0.0", "0.1.2.3", "::"]) expect(localAddressReason(a, own)).toBe("an unspecified address");
    for (const a of ["192.0.2.2", "fd00:0::2", "FD00::0:2"]) expect(localAddressReason(a, own)).toBe("an address of this device");
    for (const a of ["192.0.2.3", "8.8.8.8", "fec0::1", "2001:db8::1", "fd00::3", "10.0.0.1"]) expect(localAddressReason(a, own)).toBeNull();
  });

  test("on by default; the env var (device/env.ts reads it: its test has the 0 and 1) or the store setting allows local destinations", () => {
    const settings = new Map<string, string>();
    const get = (k: string) => settings.get(k);
    expect(ALLOW_LOCAL_ENV).toBe("EVEBOX_DATASTORE_ALLOW_LOCAL");
    expect(datastorePolicy(get, false).allowLocal()).toBe(false);
    expect(datastorePolicy(get, true).allowLocal()).toBe(true);
    const p = datastorePolicy(get, false);
    settings.set(ALLOW_LOCAL_SETTING, "true");
    expect(p.allowLocal()).toBe(true); // read at each connection, not once
    settings.set(ALLOW_LOCAL_SETTING, "false");
    expect(p.allowLocal()).toBe(false);
  });

  test("every address a name resolves to is checked; the first is connected to", async () => {
    const policy = { allowLocal: () => false, ownAddresses: () => [], lookup: async (h: string) => (h === "mixed.test" ? [{ address: "203.0.113.5", family: 4 as const }, { address: "127.0.0.1", family: 4 as const }] : [{ address: "203.0.113.9", family: 4 as const }]) };
    const err = await resolveDestination(new URL("http://mixed.test/x"), policy).catch((e) => e);
    expect(err).toBeInstanceOf(DestinationRefused);
    expect(err.message).toBe(
      "datastore http://mixed.test: mixed.test resolves to 127.0.0.1, a loopback address, is refused as a destination (loopback, link-local, unspecified and this device's own addresses are; the setting datastore.allowLocal=true or EVEBOX_DATASTORE_ALLOW_LOCAL=1 allows them)",
    );
    expect(await resolveDestination(new URL("https://good.test/x"), policy)).toEqual({ address: "203.0.113.9", family: 4 });
    expect(await resolveDestination(new URL("http://127.0.0.1/"), { allowLocal: () => true })).toBeNull();
  });
});
