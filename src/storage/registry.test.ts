import { describe, expect, test } from "bun:test";
import { pullContentTree, resolveRegistryRef } from "./registry.ts";

const HEX = "a".repeat(64);
const local = { fqdn: "docker://127.0.0.1:5000" };

describe("resolveRegistryRef", () => {
  test("joins the datastore host and the content tree URL", () => {
    expect(resolveRegistryRef(local, { url: "evebox/web:1.2" })).toBe("127.0.0.1:5000/evebox/web:1.2");
    expect(resolveRegistryRef(local, { url: "web" })).toBe("127.0.0.1:5000/web:latest");
    expect(resolveRegistryRef({ fqdn: "docker://index.docker.io" }, { url: "library/alpine:3.19" })).toBe(
      "docker.io/library/alpine:3.19",
    );
    expect(resolveRegistryRef({ fqdn: "docker://reg.example:443/team/" }, { url: "/app:2" })).toBe(
      "reg.example:443/team/app:2",
    );
  });

  test("pins by digest when the content tree has a sha256", () => {
    expect(resolveRegistryRef(local, { url: "evebox/web:1.2", sha256: HEX })).toBe(`127.0.0.1:5000/evebox/web@sha256:${HEX}`);
    expect(resolveRegistryRef(local, { url: "web", sha256: `sha256:${HEX.toUpperCase()}` })).toBe(
      `127.0.0.1:5000/web@sha256:${HEX}`,
    );
    expect(resolveRegistryRef(local, { url: `web@sha256:${HEX}` })).toBe(`127.0.0.1:5000/web@sha256:${HEX}`);
  });

  test("does not repeat a host the URL already names", () => {
    expect(resolveRegistryRef(local, { url: "127.0.0.1:5000/web:1" })).toBe("127.0.0.1:5000/web:1");
  });

  test("refuses what the engine could not pull, naming the content tree", () => {
    expect(() => resolveRegistryRef(local, { url: "Web:1" })).toThrow(
      'content tree "Web:1" in datastore "docker://127.0.0.1:5000": invalid repository "Web"',
    );
    expect(() => resolveRegistryRef(local, { url: "web", sha256: "abc" })).toThrow(/invalid sha256 "abc"/);
    expect(() => resolveRegistryRef(local, { url: `web@sha256:${HEX}`, sha256: "b".repeat(64) })).toThrow(
      /differs from the content tree's sha256/,
    );
    expect(() => resolveRegistryRef({ fqdn: "docker://" }, { url: "web" })).toThrow(/the datastore has no host/);
  });
});

describe("pullContentTree", () => {
  test("a pinned image already present: no pull, one inspect, its size given with it", async () => {
    const asked: string[] = [];
    const runtime = {
      pull: () => Promise.reject(new Error("must not pull")),
      imageInfo: async (ref: string) => {
        asked.push(ref);
        return { id: "sha256:cd", repoTags: [], repoDigests: [`127.0.0.1:5000/web@sha256:${HEX}`], sizeBytes: 4242 };
      },
    };
    const r = await pullContentTree(runtime, local, { url: "web:1", sha256: HEX });
    expect(r).toMatchObject({ imageId: "sha256:cd", pulled: false, sizeBytes: 4242 });
    expect(asked).toEqual([`127.0.0.1:5000/web@sha256:${HEX}`]);
  });
});
