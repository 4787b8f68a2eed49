// The readings of userData that used to disagree (the reconciler's, the console's, the VM runtime's) now read
// through config/userdata.ts: for every form, each gives what the device model holds.
import { describe, expect, test } from "bun:test";
import { parseUserData as consoleReading } from "../../ui/config-edit.ts";
import { desiredFromConfig } from "../reconcile/desired.ts";
import { decodeUserData } from "../runtime/vms/eve.ts";
import { buildDeviceModel } from "./model.ts";

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
