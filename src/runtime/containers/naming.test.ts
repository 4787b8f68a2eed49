import { describe, expect, test } from "bun:test";
import { containerName, sanitizeName, specGeneration } from "./naming.ts";
import type { ContainerSpec } from "./types.ts";

const spec: ContainerSpec = {
  appUuid: "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
  name: "My Web/App!",
  image: "127.0.0.1:5000/web:1",
  env: { B: "2", A: "1" },
  mounts: [{ source: "/persist/volumes/x-0", target: "/data", readOnly: false }],
};

describe("container naming", () => {
  test("sanitizes to what the engine accepts", () => {
    expect(sanitizeName("My Web/App!")).toBe("my-web-app");
    expect(sanitizeName("--__x")).toBe("x");
    expect(sanitizeName("äöü")).toBe("app");
    expect(sanitizeName("a".repeat(80))).toHaveLength(40);
  });

  test("container name carries the first 8 characters of the uuid", () => {
    expect(containerName(spec)).toBe("evebox-my-web-app-6ba7b810");
  });
});

describe("specGeneration", () => {
  test("is stable under env key order", () => {
    expect(specGeneration(spec)).toBe(specGeneration({ ...spec, env: { A: "1", B: "2" } }));
  });

  test("changes when anything that needs a new container changes", () => {
    const base = specGeneration(spec);
    expect(specGeneration({ ...spec, image: "127.0.0.1:5000/web:2" })).not.toBe(base);
    expect(specGeneration({ ...spec, env: { A: "1", B: "3" } })).not.toBe(base);
    expect(specGeneration({ ...spec, memoryBytes: 1 << 26 })).not.toBe(base);
    expect(specGeneration({ ...spec, mounts: [{ ...spec.mounts[0]!, readOnly: true }] })).not.toBe(base);
  });
});
