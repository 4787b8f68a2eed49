import { describe, expect, test } from "bun:test";
import {
  addContainerApp,
  type ContainerAppInput,
  decodeBase64,
  type Doc,
  envToUserData,
  parseUserData,
  problemField,
  readApp,
  removeApp,
  splitImageReference,
  stepDetails,
  updateApp,
  validateAppChanges,
  validateContainerAppInput,
} from "./config-edit";

/** Predictable UUIDs: 00000000-0000-4000-8000-00000000000N. */
function ids() {
  let n = 0;
  return () => `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
}

const registryApp: ContainerAppInput = {
  name: "web",
  source: { kind: "registry", registry: "docker://127.0.0.1:5000/", repository: "evebox/busybox", digest: "" },
  memoryMiB: 256,
  vcpus: 2,
  env: [
    { key: "GREETING", value: "hello world" },
    { key: "PORT", value: "8080" },
  ],
  volumes: [{ sizeMiB: 100, mountDir: "/data/", readonly: false }],
};

describe("addContainerApp", () => {
  test("writes datastore, content tree, image volume, data volume and app after EVE's conventions", () => {
    const doc = addContainerApp(null, registryApp, { newId: ids() });
    expect(doc.datastores).toEqual([{ id: "00000000-0000-4000-8000-000000000002", dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5000" }]);
    expect(doc.contentInfo).toEqual([
      {
        uuid: "00000000-0000-4000-8000-000000000001",
        dsId: "00000000-0000-4000-8000-000000000002",
        URL: "evebox/busybox:latest",
        iformat: "CONTAINER",
        displayName: "evebox/busybox:latest",
      },
    ]);
    expect(doc.volumes).toEqual([
      {
        uuid: "00000000-0000-4000-8000-000000000003",
        origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: "00000000-0000-4000-8000-000000000001" },
        displayName: "web",
        generationCount: "0",
      },
      {
        uuid: "00000000-0000-4000-8000-000000000004",
        origin: { type: "VCOT_BLANK" },
        maxsizebytes: String(100 * 1024 * 1024),
        displayName: "web-data",
        generationCount: "0",
      },
    ]);
    const app = doc.apps[0];
    expect(app.uuidandversion).toEqual({ uuid: "00000000-0000-4000-8000-000000000005", version: "1" });
    expect(app.displayname).toBe("web");
    expect(app.activate).toBe(true);
    expect(app.fixedresources).toEqual({ memory: 256 * 1024, maxmem: 256 * 1024, vcpus: 2 });
    expect(app.volumeRefList).toEqual([
      { uuid: "00000000-0000-4000-8000-000000000003" },
      { uuid: "00000000-0000-4000-8000-000000000004", mountDir: "/data" },
    ]);
    expect(decodeBase64(app.userData)).toBe("GREETING=hello world\nPORT=8080\n");
    expect(app.interfaces).toEqual([]);
  });

  test("does not change its argument, keeps what was there, and reuses a datastore with the same fqdn", () => {
    const first = addContainerApp({ deviceName: "rig-7" }, registryApp, { newId: ids() });
    const snapshot = JSON.stringify(first);
    const second = addContainerApp(
      first,
      { ...registryApp, name: "api", source: { kind: "registry", registry: "127.0.0.1:5000", repository: "team/api:2", digest: "sha256:" + "AB".repeat(32) }, volumes: [], env: [] },
      { newId: () => crypto.randomUUID() },
    );
    expect(JSON.stringify(first)).toBe(snapshot);
    expect(second.deviceName).toBe("rig-7");
    expect(second.datastores).toHaveLength(1);
    expect(second.contentInfo).toHaveLength(2);
    expect(second.contentInfo[1].sha256).toBe("ab".repeat(32));
    expect(second.contentInfo[1].dsId).toBe(first.datastores[0].id);
    expect(second.apps[1].userData).toBeUndefined();
  });

  test("a tarball URL becomes an http datastore for the host and a content tree for the path", () => {
    const doc = addContainerApp(
      null,
      { ...registryApp, source: { kind: "url", url: "https://files.example:8443/images/app%20v1.tar?x=1", sha256: "CD".repeat(32) }, volumes: [] },
      { newId: ids() },
    );
    expect(doc.datastores[0]).toMatchObject({ dType: "DsHttps", fqdn: "https://files.example:8443" });
    expect(doc.contentInfo[0]).toMatchObject({ URL: "images/app%20v1.tar?x=1", sha256: "cd".repeat(32), iformat: "CONTAINER", displayName: "app v1.tar" });
    expect(readApp(doc, doc.apps[0].uuidandversion.uuid)?.image).toBe("https://files.example:8443/images/app%20v1.tar?x=1");
  });

  test("the app page reads the app as the device does (config/model.ts): its kind, its environment", () => {
    const doc = addContainerApp(null, { ...registryApp, volumes: [] }, { newId: ids() });
    const uuid = doc.apps[0].uuidandversion.uuid;
    expect(readApp(doc, uuid)).toMatchObject({ kind: "container", image: "127.0.0.1:5000/evebox/busybox:latest" });
    // Variables outside a cloud-config's runcmd are not applied by the device: the page does not list them.
    const cc = { ...doc, apps: [{ ...doc.apps[0], userData: btoa("#cloud-config\nwrite_files:\n  - A=1\nruncmd:\n  - B=2\n") }] };
    expect(readApp(cc, uuid)?.userData).toEqual({ kind: "cloud-config", env: [{ key: "B", value: "2" }] });
    // A first volume that is neither a container image nor a disk: the device runs nothing, the page says unknown.
    const pvc = { ...doc, contentInfo: [{ ...doc.contentInfo[0], iformat: "PVC" }] };
    expect(readApp(pvc, uuid)?.kind).toBe("unknown");
  });

  test("the app page lists the patch envelopes that name the app, with what the app sees of each", () => {
    const doc = addContainerApp(null, { ...registryApp, volumes: [] }, { newId: ids() });
    const uuid = doc.apps[0].uuidandversion.uuid;
    const inline = (f: string) => ({ inline: { fileNameToUse: f, base64Data: btoa(f) } });
    const withPe = {
      ...doc,
      patchEnvelopes: [
        { uuid: "5e000000-0000-4000-8000-000000000001", version: "2", displayName: "cfg", action: "ACTIVATE", appInstIdsAllowed: [uuid], artifacts: [inline("a.yml"), inline("b.sh")] },
        { uuid: "5e000000-0000-4000-8000-000000000002", displayName: "later", appInstIdsAllowed: [uuid], artifacts: [inline("c")] },
        { uuid: "5e000000-0000-4000-8000-000000000003", displayName: "vol", action: "ACTIVATE", appInstIdsAllowed: [uuid], artifacts: [{ volumeRef: { imageName: "v", imageId: uuid } }] },
        { uuid: "5e000000-0000-4000-8000-000000000004", displayName: "not for it", action: "ACTIVATE", appInstIdsAllowed: [], artifacts: [inline("d")] },
      ],
    };
    expect(readApp(withPe, uuid)?.patchEnvelopes).toEqual([
      { uuid: "5e000000-0000-4000-8000-000000000001", name: "cfg", version: "2", state: "PATCH_ACTIVE", files: ["a.yml", "b.sh"] },
      { uuid: "5e000000-0000-4000-8000-000000000002", name: "later", version: "", state: "PATCH_READY", files: ["c"] },
      { uuid: "5e000000-0000-4000-8000-000000000003", name: "vol", version: "", state: "PATCH_ERROR", files: ["v"] },
    ]);
    expect(readApp(doc, uuid)?.patchEnvelopes).toEqual([]);
  });
});

describe("updateApp", () => {
  const base = addContainerApp(null, registryApp, { newId: ids() });
  const uuid = base.apps[0].uuidandversion.uuid as string;

  test("changes environment and resources and bumps the version", () => {
    const doc = updateApp(base, uuid, { env: [{ key: "PORT", value: "9090" }], memoryMiB: 512, vcpus: 1 });
    const app = doc.apps[0];
    expect(decodeBase64(app.userData)).toBe("PORT=9090\n");
    expect(app.fixedresources).toEqual({ memory: 512 * 1024, maxmem: 512 * 1024, vcpus: 1 });
    expect(app.uuidandversion.version).toBe("2");
    expect(updateApp(doc, uuid, {}).apps[0].uuidandversion.version).toBe("3");
    expect(base.apps[0].uuidandversion.version).toBe("1");
  });

  test("an empty environment removes userData; other fixedresources fields are kept", () => {
    const withKernel = structuredClone(base);
    withKernel.apps[0].fixedresources.virtualizationMode = "NOHYPER";
    const doc = updateApp(withKernel, uuid, { env: [{ key: "", value: "" }], memoryMiB: 64 });
    expect(doc.apps[0].userData).toBeUndefined();
    expect(doc.apps[0].fixedresources).toEqual({ memory: 64 * 1024, maxmem: 64 * 1024, vcpus: 2, virtualizationMode: "NOHYPER" });
  });

  test("edits, adds and removes extra volumes; a removed volume leaves the document", () => {
    const dataId = base.apps[0].volumeRefList[1].uuid as string;
    const edited = updateApp(base, uuid, { volumes: [{ uuid: dataId, sizeMiB: 100, mountDir: "/srv", readonly: true }, { sizeMiB: 5, mountDir: "/cache", readonly: false }] }, { newId: () => "00000000-0000-4000-8000-0000000000aa" });
    expect(edited.apps[0].volumeRefList).toEqual([
      base.apps[0].volumeRefList[0],
      { uuid: dataId, mountDir: "/srv" },
      { uuid: "00000000-0000-4000-8000-0000000000aa", mountDir: "/cache" },
    ]);
    expect(edited.volumes.find((v: Doc) => v.uuid === dataId).readonly).toBe(true);
    expect(edited.volumes.find((v: Doc) => v.uuid.endsWith("aa"))).toMatchObject({ displayName: "web-data-2", maxsizebytes: String(5 * 1024 * 1024) });

    const removed = updateApp(edited, uuid, { volumes: [] });
    expect(removed.apps[0].volumeRefList).toEqual([base.apps[0].volumeRefList[0]]);
    expect(removed.volumes).toHaveLength(1);
    expect(removed.contentInfo).toHaveLength(1);
    expect(removed.datastores).toHaveLength(1);
  });

  test("refuses an unknown app", () => {
    expect(() => updateApp(base, "nope", { vcpus: 1 })).toThrow(/no app/);
  });
});

describe("removeApp", () => {
  test("removes the app with its volumes, content tree and datastore when nothing else uses them", () => {
    const doc = addContainerApp({ deviceName: "x" }, registryApp, { newId: ids() });
    const after = removeApp(doc, doc.apps[0].uuidandversion.uuid);
    expect(after).toEqual({ deviceName: "x", datastores: [], contentInfo: [], volumes: [], apps: [] });
  });

  test("keeps a datastore and a content tree that something else still refers to", () => {
    const one = addContainerApp(null, registryApp, { newId: () => crypto.randomUUID() });
    const two = addContainerApp(one, { ...registryApp, name: "api", volumes: [] }, { newId: () => crypto.randomUUID() });
    // A base OS referring to the first app's content tree keeps it.
    two.baseos = { contentTreeUuid: one.contentInfo[0].uuid };
    const after = removeApp(two, one.apps[0].uuidandversion.uuid);
    expect(after.apps.map((a: Doc) => a.displayname)).toEqual(["api"]);
    expect(after.datastores).toHaveLength(1); // still used by api's content tree
    expect(after.contentInfo).toHaveLength(2); // the first one is kept by the base OS
    expect(after.volumes.map((v: Doc) => v.displayName)).toEqual(["api"]);
  });

  test("keeps a volume another app mounts too", () => {
    const one = addContainerApp(null, registryApp, { newId: () => crypto.randomUUID() });
    const two = addContainerApp(one, { ...registryApp, name: "api", volumes: [] }, { newId: () => crypto.randomUUID() });
    two.apps[1].volumeRefList.push({ uuid: one.apps[0].volumeRefList[1].uuid, mountDir: "/shared" });
    const after = removeApp(two, one.apps[0].uuidandversion.uuid);
    expect(after.volumes.map((v: Doc) => v.displayName).sort()).toEqual(["api", "web-data"]);
  });
});

describe("user data", () => {
  test("round-trips KEY=VALUE lines, with '=' and non-ASCII in values", () => {
    const env = [
      { key: "A", value: "x=y" },
      { key: "NAME", value: "Zürich ✓" },
    ];
    const parsed = parseUserData(envToUserData(env));
    expect(parsed).toEqual({ kind: "env", env });
  });

  test("tells cloud-config, other text and nothing apart", () => {
    expect(parseUserData(undefined).kind).toBe("none");
    expect(parseUserData(btoa("#cloud-config\nruncmd:\n  - FOO=bar\n"))).toEqual({ kind: "cloud-config", env: [{ key: "FOO", value: "bar" }] });
    expect(parseUserData(btoa("echo hello\n")).kind).toBe("other");
    expect(parseUserData("%%%not base64").kind).toBe("other");
  });
});

describe("validation", () => {
  test("accepts a good app", () => {
    expect(validateContainerAppInput(registryApp, null)).toEqual([]);
  });

  test("names each faulty field", () => {
    const problems = validateContainerAppInput(
      {
        name: "-bad name",
        source: { kind: "registry", registry: "", repository: "Evebox/BusyBox", digest: "1234" },
        memoryMiB: 1.5,
        vcpus: 0,
        env: [
          { key: "1X", value: "a" },
          { key: "OK", value: "multi\nline" },
          { key: "OK", value: "again" },
        ],
        volumes: [
          { sizeMiB: 0, mountDir: "data", readonly: false },
          { sizeMiB: 1, mountDir: "/", readonly: false },
        ],
      },
      null,
    );
    expect(problems.map((p) => p.field)).toEqual([
      "name",
      "registry",
      "repository",
      "sha256",
      "memory",
      "vcpus",
      "env.0.key",
      "env.1.value",
      "env.2.key",
      "volumes.0.size",
      "volumes.0.mountDir",
      "volumes.1.mountDir",
    ]);
  });

  test("a duplicate name, a URL without sha256 or file, and a non-http scheme are refused", () => {
    const doc = addContainerApp(null, registryApp, { newId: ids() });
    expect(validateContainerAppInput(registryApp, doc).map((p) => p.field)).toEqual(["name"]);
    const url = (u: string, sha256 = "") => validateContainerAppInput({ ...registryApp, name: "x", source: { kind: "url", url: u, sha256 } }, null).map((p) => p.field);
    expect(url("http://h:8000/a.tar")).toEqual(["sha256"]);
    expect(url("http://h:8000/", "a".repeat(64))).toEqual(["url"]);
    expect(url("ftp://h/a.tar", "a".repeat(64))).toEqual(["url"]);
    expect(url("https://h/a.tar", "a".repeat(64))).toEqual([]);
  });

  test("changes are checked too", () => {
    expect(validateAppChanges({ memoryMiB: 4, vcpus: 1 }).map((p) => p.field)).toEqual(["memory"]);
    expect(validateAppChanges({ env: [{ key: "", value: "" }] })).toEqual([]);
  });

  test("splits a pasted image reference", () => {
    expect(splitImageReference("127.0.0.1:5000/evebox/busybox:latest")).toEqual({ registry: "127.0.0.1:5000", repository: "evebox/busybox:latest" });
    expect(splitImageReference("evebox/busybox@sha256:" + "a".repeat(64))).toEqual({ repository: "evebox/busybox", digest: "a".repeat(64) });
    expect(splitImageReference("busybox")).toEqual({ repository: "busybox" });
  });
});

describe("problems and plan", () => {
  const doc = addContainerApp({ apps: [{ uuidandversion: { uuid: "other" }, displayname: "other" }] }, registryApp, { newId: ids() });
  const uuid = doc.apps[1].uuidandversion.uuid;

  test("device problem paths map to the form's fields", () => {
    expect(problemField(doc, uuid, "apps[1].displayname")).toBe("name");
    expect(problemField(doc, uuid, "apps[1].fixedresources.memory")).toBe("memory");
    expect(problemField(doc, uuid, "apps[1].fixedresources.vcpus")).toBe("vcpus");
    expect(problemField(doc, uuid, "apps[1].volumeRefList[1].mountDir")).toBe("volumes.0.mountDir");
    expect(problemField(doc, uuid, "apps[0].displayname")).toBeNull();
    expect(problemField(doc, uuid, "contentInfo[0].URL")).toBe("repository");
    expect(problemField(doc, uuid, "contentInfo[0].sha256")).toBe("sha256");
    expect(problemField(doc, uuid, "datastores[0].fqdn")).toBe("registry");
    expect(problemField(doc, uuid, "volumes[1].maxsizebytes")).toBe("volumes.0.size");
    expect(problemField(doc, uuid, "networkInstances[0].ip.subnet")).toBeNull();
  });

  test("an added app's plan step sums it up", () => {
    expect(stepDetails({ action: "add", kind: "app", id: uuid, name: "web" }, null, doc)).toEqual(["256 MiB memory, 2 vCPUs, 2 environment variables, 1 extra volume"]);
  });

  test("a changed app's plan step is explained without showing values", () => {
    const dataId = doc.apps[1].volumeRefList[1].uuid;
    const after = updateApp(doc, uuid, {
      memoryMiB: 512,
      env: [
        { key: "PORT", value: "9" },
        { key: "SECRET", value: "s3cr3t" },
      ],
      volumes: [{ uuid: dataId, sizeMiB: 100, mountDir: "/data", readonly: true }],
    });
    const details = stepDetails({ action: "change", kind: "app", id: uuid, name: "web", fields: ["fixedresources", "userData"] }, doc, after);
    expect(details).toEqual([
      "memory 256 MiB → 512 MiB",
      "environment: SECRET added",
      "environment: PORT changed",
      "environment: GREETING removed",
      "volume /data read-only",
      "version 1 → 2",
    ]);
    expect(details.join(" ")).not.toContain("s3cr3t");
  });
});
