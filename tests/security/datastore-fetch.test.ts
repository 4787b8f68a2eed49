// Finding 12 of the hardening issue: a config's datastore is where the device connects to.
//  - A datastore on loopback (the console's own port, `localhost`, 127.0.0.1), link-local, the unspecified
//    address or one of the device's own addresses is refused by default, before any request; redirects and
//    names are checked by the address actually connected to.
//  - A sha256 mismatch does not tell what was received (no digest oracle on what the device can reach).
//  - Only what an app that is to run needs is fetched: not the image of an app with `activate: false`, nor
//    a content tree no app uses.
// Real HTTP servers and the built binary; the apps never start a container.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { lookup } from "node:dns/promises";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { download, DownloadError } from "../../src/storage/download.ts";
import { waitFor } from "../support/wait.ts";
import { cleanup, type Evebox, startEvebox, tempDataDir } from "../support/evebox.ts";
import { deviceStatus, putConfig as putDoc, unixClient } from "../support/api.ts";

const U = (n: number) => `d5700000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const body = crypto.getRandomValues(new Uint8Array(4096));
const bodySha = createHash("sha256").update(body).digest("hex");
const WRONG = "ab".repeat(32);

/** A loopback HTTP server that counts what it is asked. */
function countingServer(hostname = "127.0.0.1", handler?: (req: Request) => Response) {
  const seen: string[] = [];
  const server = Bun.serve({
    hostname,
    port: 0,
    fetch(req) {
      seen.push(`${req.method} ${new URL(req.url).pathname} host=${req.headers.get("host")}`);
      return handler ? handler(req) : new Response(body as Uint8Array<ArrayBuffer>);
    },
  });
  return { server, seen, port: server.port };
}

interface App {
  n: number;
  ds: string;
  url?: string;
  sha?: string;
  activate?: boolean;
}

function doc(datastores: { id: string; fqdn: string; registry?: boolean }[], apps: App[], unreferenced?: { ds: string }) {
  const d: any = {
    datastores: datastores.map((x) => ({ id: x.id, dType: x.registry ? "DsContainerRegistry" : "DsHttp", fqdn: x.fqdn })),
    contentInfo: [],
    volumes: [],
    apps: [],
  };
  for (const a of apps) {
    const registry = datastores.find((x) => x.id === a.ds)?.registry;
    d.contentInfo.push({ uuid: U(0x100 + a.n), dsId: a.ds, URL: a.url ?? (registry ? "evebox/probe:1" : "image.tar"), iformat: "CONTAINER", sha256: a.sha ?? WRONG, displayName: `ct${a.n}` });
    d.volumes.push({ uuid: U(0x200 + a.n), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(0x100 + a.n) } });
    d.apps.push({
      uuidandversion: { uuid: U(0x300 + a.n), version: "1" },
      displayname: `app${a.n}`,
      activate: a.activate ?? true,
      fixedresources: { memory: 65536, vcpus: 1 },
      volumeRefList: [{ uuid: U(0x200 + a.n) }],
    });
  }
  if (unreferenced) d.contentInfo.push({ uuid: U(0x1ff), dsId: unreferenced.ds, URL: "unused.tar", iformat: "CONTAINER", sha256: bodySha, displayName: "unused" });
  return d;
}

/** A non-loopback address of this host: "somewhere else" for download(), one of the device's own for evebox. */
const ownAddress = Object.values(networkInterfaces())
  .flatMap((l) => l ?? [])
  .find((i) => i.family === "IPv4" && !i.internal)?.address ?? "127.0.0.1";

const sockOf = (e: Evebox) => join(e.dataDir, "run", "evebox.sock");

const putConfig = (e: Evebox, d: unknown) => putDoc(unixClient(sockOf(e)), d);
const status = (e: Evebox) => deviceStatus(unixClient(sockOf(e)));
const treeOf = async (e: Evebox, n: number) => (await status(e)).contentTrees.find((c: any) => c.uuid === U(0x100 + n));

describe("refused by default: local datastore destinations", () => {
  let evebox: Evebox;
  let dataDir: string;
  const local = countingServer();

  beforeAll(async () => {
    dataDir = tempDataDir("evebox-sec-ds-");
    // As on a device: the test helpers' allowance of loopback datastores is taken away.
    evebox = await startEvebox({ dataDir, env: { EVEBOX_DATASTORE_ALLOW_LOCAL: "" } });
  }, 120_000);
  afterAll(async () => {
    await evebox?.stop();
    local.server.stop(true);
    cleanup(dataDir);
  });

  test("the console's own port, 127.0.0.1, localhost and a loopback registry: refused before any request, naming the datastore, the address and the setting", async () => {
    const console = evebox.url.replace(/\/+$/, "");
    await putConfig(
      evebox,
      doc(
        [
          { id: U(1), fqdn: console },
          { id: U(2), fqdn: `http://127.0.0.1:${local.port}` },
          { id: U(3), fqdn: `http://localhost:${local.port}` },
          { id: U(4), fqdn: `docker://127.0.0.1:${local.port}`, registry: true },
          { id: U(5), fqdn: "http://169.254.169.254" },
          { id: U(6), fqdn: `http://0.0.0.0:${local.port}` },
          { id: U(7), fqdn: `http://[::1]:${local.port}` },
          // One of the device's own addresses (its uplink's here).
          { id: U(8), fqdn: `http://${ownAddress}:${local.port}` },
        ],
        [
          { n: 1, ds: U(1), url: "api/v1/health" },
          // Distinct digests: the cache shares one download between content trees of one digest.
          { n: 2, ds: U(2), sha: bodySha },
          { n: 3, ds: U(3), sha: "cd".repeat(32) },
          { n: 4, ds: U(4) },
          { n: 5, ds: U(5), url: "latest/meta-data/", sha: "05".repeat(32) },
          { n: 6, ds: U(6), sha: "06".repeat(32) },
          { n: 7, ds: U(7), sha: "07".repeat(32) },
          { n: 8, ds: U(8), sha: "08".repeat(32) },
        ],
      ),
    );
    const errors: Record<number, string> = {};
    for (const n of [1, 2, 3, 4, 5, 6, 7, 8]) errors[n] = await waitFor(`content tree ${n} refused`, async () => (await treeOf(evebox, n))?.error ?? undefined, 30_000);
    const port = new URL(console).port;
    expect(errors[1]).toContain(`datastore ${console}: 127.0.0.1, a loopback address, is refused`);
    expect(errors[1]).toContain(`:${port}`);
    expect(errors[2]).toContain(`datastore http://127.0.0.1:${local.port}: 127.0.0.1, a loopback address, is refused`);
    expect(errors[3]).toMatch(new RegExp(`datastore http://localhost:${local.port}: localhost resolves to (127\\.0\\.0\\.1|::1), a loopback address, is refused`));
    expect(errors[4]).toContain(`datastore docker://127.0.0.1:${local.port}: 127.0.0.1, a loopback address, is refused`);
    expect(errors[5]).toContain("datastore http://169.254.169.254: 169.254.169.254, a link-local address, is refused");
    expect(errors[6]).toContain(`datastore http://0.0.0.0:${local.port}: 0.0.0.0, an unspecified address, is refused`);
    expect(errors[7]).toContain(`datastore http://[::1]:${local.port}: ::1, a loopback address, is refused`);
    expect(errors[8]).toContain(`datastore http://${ownAddress}:${local.port}: ${ownAddress}, an address of this device, is refused`);
    for (const n of [1, 2, 3, 4, 5, 6, 7, 8]) {
      expect(errors[n]).toContain("datastore.allowLocal=true");
      expect(errors[n]).toContain("EVEBOX_DATASTORE_ALLOW_LOCAL=1");
    }
    // Not a single request reached the loopback server (neither evebox's nor the engine's, for the registry).
    expect(local.seen).toEqual([]);
    const apps = (await status(evebox)).apps;
    expect(apps.find((a: any) => a.name === "app2").error).toContain("is refused as a destination");
  }, 60_000);
});

describe("download(): every hop is checked, and the connection goes to the address checked", () => {
  // A non-loopback address of this host stands for "somewhere else" (own addresses are left out of the
  // policy here); the loopback server is what must never be reached.
  const other = ownAddress === "127.0.0.1" ? undefined : ownAddress;
  // Two names of our own (a resolver stand-in); every other name goes to the system's resolver.
  const names: Record<string, string> = { "datastore.test": other!, "rebind.test": "127.0.0.1" };
  const policy = {
    allowLocal: () => false,
    ownAddresses: () => [] as string[],
    lookup: async (h: string) => (names[h] ? [{ address: names[h]!, family: 4 as const }] : (await lookup(h, { all: true })).map((a) => ({ address: a.address, family: a.family as 4 | 6 }))),
  };
  const inner = countingServer();
  let outer: ReturnType<typeof countingServer>;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "evebox-sec-dl-"));
    outer = countingServer(other!, (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/to-loopback") return Response.redirect(`http://127.0.0.1:${inner.port}/secret`, 302);
      if (path === "/to-linklocal") return Response.redirect("http://169.254.169.254/latest/meta-data/", 307);
      if (path === "/to-name") return Response.redirect(`http://localhost:${inner.port}/secret`, 301);
      if (path === "/hop") return Response.redirect("/blob", 302);
      return new Response(body as Uint8Array<ArrayBuffer>);
    });
  });
  afterAll(() => {
    inner.server.stop(true);
    outer?.server.stop(true);
    rmSync(dir, { recursive: true, force: true });
  });

  test.skipIf(!other)("a redirect to loopback, link-local or a name resolving to loopback is refused; none is followed", async () => {
    for (const [path, address] of [["/to-loopback", "127.0.0.1"], ["/to-linklocal", "169.254.169.254"], ["/to-name", "127.0.0.1"]] as const) {
      const err = await download({ url: `http://${other}:${outer.port}${path}`, dest: join(dir, "x"), expectedSha256: bodySha, destinations: policy }).catch((e) => e);
      expect(err).toBeInstanceOf(DownloadError);
      expect(err.kind).toBe("refused");
      expect(err.message).toContain(address);
      expect(err.message).toContain("datastore.allowLocal");
    }
    expect(inner.seen).toEqual([]);
    expect(existsSync(join(dir, "x"))).toBe(false);
    // A redirect to an allowed place is followed.
    const ok = await download({ url: `http://${other}:${outer.port}/hop`, dest: join(dir, "y"), expectedSha256: bodySha, destinations: policy });
    expect(ok.sha256).toBe(bodySha);
  });

  test.skipIf(!other)("a name is connected to at the address it was checked at (Host stays the name); a name resolving to loopback is refused", async () => {
    const before = outer.seen.length;
    const ok = await download({ url: `http://datastore.test:${outer.port}/blob`, dest: join(dir, "z"), expectedSha256: bodySha, destinations: policy });
    expect(ok.sha256).toBe(bodySha);
    expect(outer.seen.slice(before)).toEqual([`GET /blob host=datastore.test:${outer.port}`]);
    const err = await download({ url: `http://rebind.test:${inner.port}/secret`, dest: join(dir, "w"), destinations: policy }).catch((e) => e);
    expect(err.kind).toBe("refused");
    expect(err.message).toContain("rebind.test resolves to 127.0.0.1, a loopback address");
    expect(inner.seen).toEqual([]);
  });
});

describe("download() over https, pinned to the checked address", () => {
  const other = ownAddress === "127.0.0.1" ? undefined : ownAddress;
  const openssl = Bun.which("openssl");
  let dir: string;
  let server: ReturnType<typeof Bun.serve> | undefined;
  let cert = "";

  beforeAll(async () => {
    if (!other || !openssl) return;
    dir = mkdtempSync(join(tmpdir(), "evebox-sec-tls-"));
    const p = Bun.spawn([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "1", "-subj", "/CN=datastore.test", "-addext", "subjectAltName=DNS:datastore.test"], { stdout: "ignore", stderr: "ignore" });
    if ((await p.exited) !== 0) throw new Error("openssl req failed");
    cert = await Bun.file(join(dir, "c.pem")).text();
    server = Bun.serve({ hostname: other, port: 0, tls: { cert, key: await Bun.file(join(dir, "k.pem")).text() }, fetch: () => new Response(body as Uint8Array<ArrayBuffer>) });
  });
  afterAll(() => {
    server?.stop(true);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test.skipIf(!other || !openssl)("the TLS server name and the certificate check stay the URL's host", async () => {
    const names: Record<string, string> = { "datastore.test": other!, "impostor.test": other! };
    const policy = { allowLocal: () => false, ownAddresses: () => [] as string[], lookup: async (h: string) => (names[h] ? [{ address: names[h]!, family: 4 as const }] : []) };
    // This test's own CA, added to what download() asks of fetch.
    const withCa = ((url: string, init: any) => fetch(url, { ...init, tls: { ...(init?.tls ?? {}), ca: cert } })) as typeof fetch;
    const ok = await download({ url: `https://datastore.test:${server!.port}/blob`, dest: join(dir, "ok"), expectedSha256: bodySha, destinations: policy, fetch: withCa });
    expect(ok.sha256).toBe(bodySha);
    // Same address, another name: the certificate (for datastore.test) does not fit it.
    const err = await download({ url: `https://impostor.test:${server!.port}/blob`, dest: join(dir, "bad"), destinations: policy, fetch: withCa }).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.message).toMatch(/impostor\.test|altnames|certificate/i);
  });
});

describe("a device that allows loopback datastores (as the tests do)", () => {
  let evebox: Evebox;
  let dataDir: string;
  const store = countingServer();
  const DS = U(9);

  beforeAll(async () => {
    dataDir = tempDataDir("evebox-sec-ds2-");
    evebox = await startEvebox({ dataDir }); // TEST_DEVICE_ENV allows loopback datastores
  }, 120_000);
  afterAll(async () => {
    await evebox?.stop();
    store.server.stop(true);
    cleanup(dataDir);
  });

  test("a sha256 mismatch names what was expected, never what was received (status, events, log)", async () => {
    await putConfig(evebox, doc([{ id: DS, fqdn: `http://127.0.0.1:${store.port}` }], [{ n: 1, ds: DS, sha: WRONG }]));
    const error = await waitFor("the mismatch", async () => (await treeOf(evebox, 1))?.error ?? undefined, 30_000);
    expect(error).toContain("sha256 mismatch");
    expect(error).toContain(WRONG);
    const everything = JSON.stringify(await status(evebox)) + evebox.output();
    expect(everything).not.toContain(bodySha);
    // The event stream's recent history too.
    const events = await fetch("http://localhost/api/v1/events", { unix: sockOf(evebox), signal: AbortSignal.timeout(1500) } as RequestInit)
      .then(async (r) => {
        let text = "";
        const reader = r.body!.getReader();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            text += new TextDecoder().decode(value);
          }
        } catch {}
        return text;
      })
      .catch(() => "");
    expect(events).not.toContain(bodySha);
  }, 60_000);

  test("a halted app's image and a content tree no app uses are not downloaded; activating the app fetches it", async () => {
    store.seen.length = 0;
    const halted = doc([{ id: DS, fqdn: `http://127.0.0.1:${store.port}` }], [{ n: 2, ds: DS, url: "halted.tar", activate: false }], { ds: DS });
    await putConfig(evebox, halted);
    await waitFor("app2 halted", async () => (await status(evebox)).apps.find((a: any) => a.name === "app2" && a.state === "HALTED"), 20_000);
    await Bun.sleep(3000); // deliberately: several reconcile passes, none of which may fetch anything
    expect(store.seen).toEqual([]);
    const s = await status(evebox);
    expect(s.apps.find((a: any) => a.name === "app2")).toMatchObject({ state: "HALTED", error: null });
    // The same document with the app activated: now its image is fetched (and nothing else).
    halted.apps[0].activate = true;
    halted.apps[0].uuidandversion.version = "2";
    await putConfig(evebox, halted);
    await waitFor("the image fetched", async () => (store.seen.length ? true : undefined), 20_000);
    expect(store.seen.every((r) => r.startsWith("GET /halted.tar"))).toBe(true);
  }, 60_000);
});
