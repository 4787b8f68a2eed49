import { expect, test } from "bun:test";
import { parseControllerAddress, serverFileForm } from "./http.ts";

test("controller addresses: EVE's host:port and URLs normalize to https://host[:port]; http and paths are refused", () => {
  expect(parseControllerAddress("zedcloud.example.net")).toBe("https://zedcloud.example.net");
  expect(parseControllerAddress(" mydomain.adam:3333\n")).toBe("https://mydomain.adam:3333");
  expect(parseControllerAddress("https://127.0.0.1:8443/")).toBe("https://127.0.0.1:8443");
  expect(() => parseControllerAddress("http://c.example")).toThrow(/https/);
  expect(() => parseControllerAddress("https://c.example/api/v2")).toThrow(/only https/);
  expect(() => parseControllerAddress("")).toThrow(/empty/);
  expect(serverFileForm("https://mydomain.adam:3333")).toBe("mydomain.adam:3333");
});
