// The tiny app bundle the bundle tests share (tests/bundles.test.ts, tests/ui-bundles.test.ts): the busybox image
// from `docker save`, one app keeping a marker and a boot log in its data volume, on a Local network instance,
// with a serial port of this machine, the four parameter kinds; built by the compiled binary's `bundle build`.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { busyboxArchive } from "./docker.ts";
import { sh } from "./run.ts";

export const U = {
  siteNi: "b0000000-0000-4000-8000-000000000001",
  siteVol: "b0000000-0000-4000-8000-000000000002",
  ds: "b1000000-0000-4000-8000-000000000001",
  ct: "b1000000-0000-4000-8000-000000000002",
  root: "b1000000-0000-4000-8000-000000000003",
  data: "b1000000-0000-4000-8000-000000000004",
  scratch: "b1000000-0000-4000-8000-000000000005",
  ni: "b1000000-0000-4000-8000-000000000006",
  app: "b1000000-0000-4000-8000-000000000007",
};

/** The site's own objects before any bundle: a network instance on 10.214.0.0/24 and a volume. */
export const SITE = {
  networkInstances: [{ uuidandversion: { uuid: U.siteNi, version: "1" }, displayname: "site-net", instType: "ZnetInstLocal", activate: true, ip: { subnet: "10.214.0.0/24", gateway: "10.214.0.1", dhcpRange: { start: "10.214.0.10", end: "10.214.0.50" } } }],
  volumes: [{ uuid: U.siteVol, origin: { type: "VCOT_BLANK" }, maxsizebytes: "1048576", displayName: "site-data", generationCount: "1" }],
};

export function tinyManifest(version: string, withScratch: boolean) {
  const cmd = "sh -c 'test -f /data/marker || echo $$-$RANDOM$RANDOM > /data/marker; echo \"$TITLE\" >> /data/boots; trap \"exit 0\" TERM; sleep 3600 & wait'";
  return {
    format: 1,
    name: "tiny-stack",
    version,
    description: "one busybox app keeping a marker in its data volume",
    parameters: {
      uplink: { kind: "port", label: "Port of the stack's network", default: "uplink" },
      subnet: { kind: "subnet", label: "Subnet of the stack's network", default: "10.213.0.0/24" },
      sensor: { kind: "serial", label: "Serial port" },
      title: { kind: "string", label: "Title", default: "Drill 3", pattern: "^[A-Za-z0-9 ._-]{1,40}$" },
    },
    images: { box: { file: "images/box.tar" } },
    config: {
      datastores: [{ id: U.ds, dType: "DsHttp", fqdn: "http://offline.invalid", dpath: "bundle" }],
      contentInfo: [{ uuid: U.ct, dsId: U.ds, URL: "box.tar", iformat: "CONTAINER", sha256: "{{image.box}}", displayName: "tiny-box" }],
      volumes: [
        { uuid: U.root, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U.ct }, displayName: "tiny-root", generationCount: "1" },
        { uuid: U.data, origin: { type: "VCOT_BLANK" }, maxsizebytes: "10485760", displayName: "tiny-data", generationCount: "1" },
        ...(withScratch ? [{ uuid: U.scratch, origin: { type: "VCOT_BLANK" }, maxsizebytes: "1048576", displayName: "tiny-scratch", generationCount: "1" }] : []),
      ],
      networkInstances: [
        {
          uuidandversion: { uuid: U.ni, version: "1" },
          displayname: "tiny-net",
          instType: "ZnetInstLocal",
          activate: true,
          port: { name: "{{param.uplink}}" },
          ip: { subnet: "{{param.subnet}}", gateway: "{{param.subnet.gateway}}", dhcpRange: { start: "{{param.subnet.dhcpStart}}", end: "{{param.subnet.dhcpEnd}}" } },
        },
      ],
      apps: [
        {
          uuidandversion: { uuid: U.app, version },
          displayname: "tiny-keeper",
          activate: true,
          fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 },
          volumeRefList: [{ uuid: U.root }, { uuid: U.data, mountDir: "/data" }],
          adapters: [{ type: "PhyIoNoop", name: "{{param.sensor}}" }],
          interfaces: [{ name: "eth0", networkId: U.ni, addr: "{{param.subnet.host.5}}" }],
          userData: { env: { TITLE: "{{param.title}}", EVE_ECO_CMD: cmd } },
        },
      ],
    },
  };
}

/** Builds tiny-stack `version` into `root` with `binary` (signed with the private key file `key`); answers the bundle file. */
export async function buildTinyBundle(binary: string, root: string, version: string, withScratch: boolean, key?: string): Promise<string> {
  const dir = join(root, `src-${version}`);
  mkdirSync(join(dir, "images"), { recursive: true });
  writeFileSync(join(dir, "images", "box.tar"), (await busyboxArchive()).bytes);
  writeFileSync(join(dir, "bundle.json"), JSON.stringify(tinyManifest(version, withScratch), null, 2));
  const out = join(root, `tiny-${version}${key ? "-signed" : ""}.bundle`);
  const r = await sh([binary, "bundle", "build", dir, "--out", out, ...(key ? ["--key", key] : [])]);
  if (r.code !== 0) throw new Error(`bundle build: ${r.code} ${r.out} ${r.err}`);
  if (!r.out.includes(`bundle tiny-stack ${version}`)) throw new Error(`bundle build said: ${r.out}`);
  return out;
}
