// The readings that used to disagree now read through the device model: userData (the reconciler's, the
// console's, the VM runtime's: config/userdata.ts) and port labels (validation's, the network's, the device's own
// ports': config/ports.ts, resolved once by config/model.ts).
import { describe, expect, test } from "bun:test";
import { parseUserData as consoleReading } from "../../ui/config-edit.ts";
import { desiredFromConfig } from "../reconcile/desired.ts";
import { decodeUserData } from "../runtime/vms/eve.ts";
import { portConfigFromDoc } from "../init/ports.ts";
import { EMPTY_FACTS, networkModel } from "../network/model.ts";
import { buildDeviceModel } from "./model.ts";
import { NO_ENV, readConfig } from "./validate.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");
const U = (n: number) => `7a000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

const FORMS: [string, string | undefined][] = [
  ["none", undefined],
  ["KEY=VALUE lines", b64("A=1\nB=two words\n")],
  ["quoted values, comments, CRLF, a repeated key", b64('A="quoted"\r\n# note\r\nA=again\r\nC=\r\n')],
  ["EVE_ECO_CMD", b64(`X=1\nEVE_ECO_CMD=sh -c 'echo "hi"'\n`)],
  ["#cloud-config with runcmd", b64("#cloud-config\nruncmd:\n  - FOO=bar\n  - \"BAZ=1\"\n  - echo hi\nusers:\n  - NOT=this\n")],
  // The console once listed every "- KEY=VALUE" line of a cloud-config, which the device never applied.
  ["#cloud-config with KEY=VALUE outside runcmd", b64("#cloud-config\nwrite_files:\n  - OUTSIDE=1\n")],
  ["a script with a variable", b64("echo hello\nA=1\n")],
  ["plain text (not base64)", "#cloud-config\nhostname: vm1\n"],
  ["plain KEY=VALUE", "GREETING=hi"],
  ["base64-looking plain text", "abcd"],
  ["non-ASCII", b64("NAME=Zürich ✓\n")],
];

function docWith(userData: string | undefined) {
  return {
    datastores: [{ id: U(1), dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5000" }],
    contentInfo: [{ uuid: U(2), dsId: U(1), URL: "a:1", iformat: "CONTAINER" }],
    volumes: [{ uuid: U(3), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(2) } }],
    apps: [{ uuidandversion: { uuid: U(20) }, displayname: "web", volumeRefList: [{ uuid: U(3) }], ...(userData === undefined ? {} : { userData }) }],
  };
}

describe("one reading of userData", () => {
  for (const [name, userData] of FORMS) {
    test(name, () => {
      const doc = docWith(userData);
      const model = buildDeviceModel(doc).model.apps[0]!.userData;
      // The reconciler (a container's environment and command).
      const app = desiredFromConfig(doc).apps[0]!;
      expect(app.env).toEqual(model.env);
      expect(app.cmd).toEqual(model.cmd);
      // The console's editor lists the variables the device reads, EVE_ECO_CMD among them.
      const shown = consoleReading(userData);
      expect(shown.kind).toBe(model.kind);
      expect(shown.env).toEqual(model.vars);
      const applied = Object.fromEntries(shown.env.filter((v) => v.key !== "EVE_ECO_CMD").map((v) => [v.key, v.value]));
      expect(applied).toEqual(app.env);
      // The VM runtime (cloud-init user-data).
      expect(decodeUserData(userData)).toBe(model.text ?? undefined);
    });
  }

  test("the forms read as expected (the agreement above is not agreement on nothing)", () => {
    const read = (i: number) => buildDeviceModel(docWith(FORMS[i]![1])).model.apps[0]!.userData;
    expect(read(1).env).toEqual({ A: "1", B: "two words" });
    expect(read(2).env).toEqual({ A: "again", C: "" });
    expect(read(3)).toMatchObject({ env: { X: "1" }, cmd: ["sh", "-c", 'echo "hi"'] });
    expect(read(4).env).toEqual({ FOO: "bar", BAZ: "1" });
    expect(read(5).vars).toEqual([]);
    expect(read(7)).toMatchObject({ encoding: "plain", kind: "cloud-config", text: "#cloud-config\nhostname: vm1\n" });
    expect(read(8).env).toEqual({ GREETING: "hi" });
  });
});

describe("one reading of port labels", () => {
  const NI = U(10);
  const NET = U(30);
  const facts = { ...EMPTY_FACTS, interfaces: ["eth0", "eth1", "eth2"], defaultRouteIfname: "eth0" };
  const onLabel = (label: string, adapters: { name: string; lowerLayerName?: string }[]) => ({
    deviceIoList: [{ logicallabel: "wan", phylabel: "Port 1", phyaddrs: { Ifname: "eth1" } }, { logicallabel: "lan", phyaddrs: { Ifname: "eth2" } }],
    systemAdapterList: adapters.map((a) => ({ ...a, uplink: true, networkUUID: NET })),
    networks: [{ id: NET, ip: { dhcp: "Client" } }],
    networkInstances: [{ uuidandversion: { uuid: NI }, instType: "ZnetInstSwitch", port: { name: label } }],
  });

  for (const [label, adapters, ifname] of [
    ["wan", [{ name: "wan" }], "eth1"],
    ["Port 1", [{ name: "Port 1" }], "eth1"],
    ["uplink-a", [{ name: "uplink-a", lowerLayerName: "lan" }], "eth2"],
    ["eth0", [{ name: "eth0" }], "eth0"],
  ] as [string, { name: string; lowerLayerName?: string }[], string][]) {
    test(`${label}: validation, the network and the device's ports name ${ifname}`, () => {
      const doc = onLabel(label, adapters);
      const { model, problems } = readConfig(doc, NO_ENV);
      expect(problems).toEqual([]);
      expect(model.portLabels.get(label)).toMatchObject({ kind: "ifname", ifname });
      expect(networkModel(doc, problems, facts, { subnets: {}, addrs: {} }).instances[0]!.uplink).toEqual({ label, ifname });
      expect(portConfigFromDoc(doc, facts.interfaces, "v1").config!.ports.map((p) => p.ifname)).toEqual([ifname]);
    });
  }

  test("a cycle: validation refuses it, the network and the device's ports refuse it with the same chain", () => {
    const doc = onLabel("lan-a", [
      { name: "lan-a", lowerLayerName: "lan-b" },
      { name: "lan-b", lowerLayerName: "lan-a" },
    ]);
    const { problems } = readConfig(doc, NO_ENV);
    const chain = "lan-a → lan-b → lan-a";
    expect(problems.find((p) => p.path === "networkInstances[0].port.name")!.message).toContain(chain);
    const ni = networkModel(doc, [], facts, { subnets: {}, addrs: {} }).instances[0]!;
    expect(ni.error).toContain(chain);
    const ports = portConfigFromDoc(doc, facts.interfaces, "v1");
    expect(ports.config).toBeNull();
    expect(ports.problems[0]).toContain(chain);
  });
});
