import { describe, expect, test } from "bun:test";
import { NO_ENV, readConfig } from "../config/validate.ts";
import { compareVersions, readManifest } from "./manifest.ts";
import { checkPlaceholders, type DeviceFacts, resolveParams, substitute } from "./placeholders.ts";
import { planBundle, withoutBundle } from "./plan.ts";

const U = {
  ds: "11111111-1111-4111-8111-111111111111",
  ct: "22222222-2222-4222-8222-222222222222",
  vol: "33333333-3333-4333-8333-333333333333",
  ni: "44444444-4444-4444-8444-444444444444",
  app: "55555555-5555-4555-8555-555555555555",
  other: "66666666-6666-4666-8666-666666666666",
};
const SHA = "a".repeat(64);

function manifest(over: Record<string, unknown> = {}, config?: Record<string, unknown>) {
  return {
    format: 1,
    name: "demo",
    version: "1.0.0",
    description: "a demo",
    parameters: {
      uplink: { kind: "port", label: "port", default: "uplink" },
      sensor: { kind: "serial", label: "serial" },
      subnet: { kind: "subnet", label: "subnet", default: "10.77.0.0/24" },
      title: { kind: "string", label: "title", default: "Drill 3", pattern: "^[A-Za-z0-9 ._-]{1,40}$" },
    },
    images: { box: { sha256: SHA, size: 10 } },
    config: config ?? {
      datastores: [{ id: U.ds, dType: "DsHttp", fqdn: "http://offline.invalid", dpath: "bundle" }],
      contentInfo: [{ uuid: U.ct, dsId: U.ds, URL: "box.tar", iformat: "CONTAINER", sha256: "{{image.box}}", displayName: "demo-box" }],
      volumes: [{ uuid: U.vol, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U.ct }, displayName: "demo-root", generationCount: "1" }],
      networkInstances: [
        {
          uuidandversion: { uuid: U.ni, version: "1" },
          displayname: "demo-net",
          instType: "ZnetInstLocal",
          activate: true,
          port: { name: "{{param.uplink}}" },
          ip: { subnet: "{{param.subnet}}", gateway: "{{param.subnet.gateway}}", dhcpRange: { start: "{{param.subnet.dhcpStart}}", end: "{{param.subnet.dhcpEnd}}" } },
        },
      ],
      apps: [
        {
          uuidandversion: { uuid: U.app, version: "1" },
          displayname: "demo-app",
          activate: true,
          fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 },
          volumeRefList: [{ uuid: U.vol }],
          adapters: [{ type: "PhyIoNoop", name: "{{param.sensor}}" }],
          interfaces: [{ name: "eth0", networkId: U.ni, addr: "{{param.subnet.host.5}}" }],
          userData: { env: { TITLE: "{{param.title}}", EVE_ECO_CMD: "sleep 3600" } },
        },
      ],
    },
    ...over,
  };
}

const facts: DeviceFacts = {
  ports: ["eth0", "eth1"],
  serial: [{ name: "COM1", devPath: "/dev/pts/3", declared: true }, { name: "ttyS0", devPath: "/dev/ttyS0", declared: false }],
  subnets: [{ cidr: "192.168.1.0/24", what: "a network of this device's routes" }, { cidr: "10.1.0.0/16", what: "network instance plant" }],
};

function built(over: Record<string, unknown> = {}, config?: Record<string, unknown>) {
  const r = readManifest(manifest(over, config), "built");
  expect(r.problems).toEqual([]);
  return r.manifest!;
}

describe("manifest", () => {
  test("a good manifest reads; bad names, versions, kinds and keys are each named", () => {
    expect(built().name).toBe("demo");
    const r = readManifest(
      manifest({ name: "Demo/../x", version: "1.0", parameters: { "bad name": { kind: "port" }, s: { kind: "string" }, k: { kind: "file" } } }, { apps: [{}], systemAdapterList: [] }),
      "built",
    );
    const paths = r.problems.map((p) => p.path);
    expect(r.manifest).toBeNull();
    expect(paths).toEqual(expect.arrayContaining(["name", "version", "parameters.bad name", "parameters.s.pattern", "parameters.k.kind", "config.systemAdapterList"]));
  });
  test("source form: an image file outside the directory is refused", () => {
    for (const file of ["../x.tar", "/etc/passwd", "images/../../x", "a//b", "im\nages"]) {
      const r = readManifest({ ...manifest(), images: { box: { file } } }, "source");
      expect(r.problems.map((p) => p.path)).toContain("images.box.file");
    }
    expect(readManifest({ ...manifest(), images: { box: { file: "images/box.tar" } } }, "source").problems).toEqual([]);
  });
  test("versions compare as semver", () => {
    expect(compareVersions("1.10.0", "1.9.9")).toBeGreaterThan(0);
    expect(compareVersions("1.0.0-rc1", "1.0.0")).toBeLessThan(0);
    expect(compareVersions("2.0.0", "2.0.0")).toBe(0);
  });
});

describe("placeholders", () => {
  test("whole-string placeholders substitute, derived subnet forms computed", () => {
    const m = built();
    expect(checkPlaceholders(m)).toEqual([]);
    const { values, problems } = resolveParams(m, { sensor: "COM1" }, facts);
    expect(problems).toEqual([]);
    const s = substitute(m, values, { box: SHA });
    expect(s.problems).toEqual([]);
    const ni = (s.config.networkInstances as any[])[0];
    expect(ni.port.name).toBe("uplink");
    expect(ni.ip).toEqual({ subnet: "10.77.0.0/24", gateway: "10.77.0.1", dhcpRange: { start: "10.77.0.2", end: "10.77.0.254" } });
    const app = (s.config.apps as any[])[0];
    expect(app.adapters[0].name).toBe("COM1");
    expect(app.interfaces[0].addr).toBe("10.77.0.5");
    expect(Buffer.from(app.userData, "base64").toString()).toBe("TITLE=Drill 3\nEVE_ECO_CMD=sleep 3600\n");
    expect((s.config.contentInfo as any[])[0].sha256).toBe(SHA);
  });
  test("a placeholder as a substring, in a key, unknown, or an image outside a sha256 is refused with its path", () => {
    const base = manifest() as any;
    const cfg = structuredClone(base.config);
    cfg.apps[0].displayname = "app-{{param.title}}";
    cfg.apps[0].interfaces[0]["{{param.x}}"] = "1";
    cfg.networkInstances[0].displayname = "{{param.nope}}";
    cfg.volumes[0].displayName = "{{image.box}}";
    cfg.datastores[0].dpath = "{{ param.title }}";
    cfg.apps[0].userData.env.TITLE = "{{param.title.gateway}}";
    cfg.apps[0].userData.env["BAD-KEY"] = "x";
    const problems = checkPlaceholders(built({}, cfg));
    const paths = problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "config.apps[0].displayname",
        "config.apps[0].interfaces[0].{{param.x}}",
        "config.networkInstances[0].displayname",
        "config.volumes[0].displayName",
        "config.datastores[0].dpath",
        "config.apps[0].userData.env.TITLE",
        "config.apps[0].userData.env.BAD-KEY",
      ]),
    );
  });
  test("every parameter and image must be used", () => {
    const cfg = structuredClone((manifest() as any).config);
    cfg.apps[0].userData.env.TITLE = "fixed";
    cfg.contentInfo[0].sha256 = SHA;
    const paths = checkPlaceholders(built({}, cfg)).map((p) => p.path);
    expect(paths).toEqual(["parameters.title", "images.box"]);
  });
  test("param values with a newline, a path, a placeholder or an unknown name are refused", () => {
    const m = built();
    const cases: [Record<string, unknown>, string][] = [
      [{ sensor: "COM1", title: "Drill\n3" }, "params.title"],
      [{ sensor: "/dev/../etc/shadow" }, "params.sensor"],
      [{ sensor: "COM1", uplink: "../../eth0" }, "params.uplink"],
      [{ sensor: "COM1", uplink: "eth0\n" }, "params.uplink"],
      [{ sensor: "COM1", title: "{{param.sensor}}" }, "params.title"],
      [{ sensor: "COM1", title: "x; rm -rf /" }, "params.title"],
      [{ sensor: "COM1", extra: "1" }, "params.extra"],
      [{ sensor: 3 }, "params.sensor"],
      [{}, "params.sensor"],
    ];
    for (const [given, path] of cases) {
      const r = resolveParams(m, given, facts);
      expect(r.problems.map((p) => p.path)).toContain(path);
    }
    expect(resolveParams(m, { sensor: "ttyS0", uplink: "eth1" }, facts).problems).toEqual([]);
  });
  test("a subnet colliding with the host's routes or an existing network instance, bad syntax or host bits is refused", () => {
    const m = built();
    const problem = (subnet: string) => resolveParams(m, { sensor: "COM1", subnet }, facts).problems.find((p) => p.path === "params.subnet")?.message;
    expect(problem("192.168.1.128/25")).toContain("overlaps 192.168.1.0/24 (a network of this device's routes)");
    expect(problem("10.0.0.0/8")).toContain("overlaps 10.1.0.0/16 (network instance plant)");
    expect(problem("10.77.0.1/24")).toContain("host bits");
    expect(problem("10.77.0.0/30")).toContain("prefix");
    expect(problem("fd00::/64")).toContain("IPv4");
    expect(problem("10.78.0.0/24")).toBeUndefined();
  });
});

describe("plan", () => {
  const validate = (d: Record<string, any>) => readConfig(d, NO_ENV).problems;
  function fragment(values: Record<string, string> = { sensor: "COM1" }) {
    const m = built();
    const r = resolveParams(m, values, facts);
    return substitute(m, r.values, { box: SHA }).config as Record<string, any[]>;
  }
  const serial = { deviceIoList: [{ ptype: "PhyIoCOM", phylabel: "COM1", logicallabel: "COM1", assigngrp: "COM1", phyaddrs: { serial: "/dev/pts/3" }, usage: "PhyIoUsageDedicated" }] };

  test("a first import adds every object; the merged document keeps what was there", () => {
    const current = { ...serial };
    const p = planBundle(current, fragment(), null, validate);
    expect(p.problems).toEqual([]);
    expect(p.added.map((r) => `${r.collection}:${r.id}`).sort()).toEqual([`apps:${U.app}`, `contentInfo:${U.ct}`, `datastores:${U.ds}`, `networkInstances:${U.ni}`, `volumes:${U.vol}`]);
    expect(p.merged.apps.map((a: any) => a.displayname)).toEqual(["demo-app"]);
    expect(p.merged.deviceIoList).toEqual(serial.deviceIoList);
    expect(p.objects.apps).toEqual([U.app]);
  });
  test("a UUID or a name already used by an object not of this bundle refuses it", () => {
    const byId = { ...serial, volumes: [{ uuid: U.vol.toUpperCase(), displayName: "someone's data" }] };
    const p1 = planBundle(byId, fragment(), null, validate);
    expect(p1.problems.map((p) => p.message).join()).toContain(`volume ${U.vol} is already on this device (volume "someone's data"`);
    const byName = { ...serial, apps: [{ uuidandversion: { uuid: U.other, version: "1" }, displayname: "demo-app" }] };
    const p2 = planBundle(byName, fragment(), null, validate);
    expect(p2.problems.map((p) => p.message).join()).toContain(`the name "demo-app" is already used by app "demo-app" ${U.other}`);
  });
  test("the merged document's validation problems refuse it (a subnet overlapping an NI the facts did not know)", () => {
    const current = { ...serial, networkInstances: [{ uuidandversion: { uuid: U.other, version: "1" }, displayname: "plant", instType: "ZnetInstLocal", ip: { subnet: "10.77.0.0/16", gateway: "10.77.0.1" } }] };
    const p = planBundle(current, fragment(), null, validate);
    expect(p.problems.length).toBeGreaterThan(0);
    expect(p.problems.map((x) => x.message).join()).toMatch(/overlap/);
  });
  test("an upgrade replaces the bundle's own objects: same UUIDs are changed or unchanged, dropped ones removed", () => {
    const v1 = fragment() as any;
    v1.volumes.push({ uuid: U.other, displayName: "demo-data", generationCount: "1" });
    v1.apps[0].volumeRefList.push({ uuid: U.other });
    const first = planBundle(serial, v1, null, validate);
    expect(first.problems).toEqual([]);
    const next = fragment({ sensor: "COM1", title: "Drill 4" }) as any;
    const up = planBundle(first.merged, next, first.objects, validate);
    expect(up.problems).toEqual([]);
    expect(up.changed.map((r) => r.id)).toEqual([U.app]);
    expect(up.removed.map((r) => r.id)).toEqual([U.other]);
    expect(up.unchanged.map((r) => r.id).sort()).toEqual([U.ds, U.ct, U.ni, U.vol].sort());
    expect(up.merged.apps.length).toBe(1);
  });
  test("removing takes out the bundle's objects only", () => {
    const current = { ...serial, apps: [{ uuidandversion: { uuid: U.other, version: "1" }, displayname: "other" }] };
    const p = planBundle(current, fragment(), null, validate);
    const { doc, removed } = withoutBundle(p.merged, p.objects);
    expect(removed.length).toBe(5);
    expect(doc.apps.map((a: any) => a.displayname)).toEqual(["other"]);
    expect(doc.deviceIoList).toEqual(serial.deviceIoList);
    expect(doc.volumes).toBeUndefined();
  });
});
