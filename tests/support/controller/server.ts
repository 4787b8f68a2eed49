// A real EVE API v2 controller for tests, after lf-edge/adam: HTTPS on 127.0.0.1 with its own CA chain, signed
// answers, register/uuid/config (hash and 304)/attest, and info, metrics, newlogs and flowlog sinks that decode what
// arrives with evebox's proto/ (wire-identical to lf-edge/eve-api). Faults are switched on per test.
import { X509Certificate } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { P256_ECDSA, pemBlocks, sha256 } from "../../../src/controller/x509.ts";
import { CommonHashAlgorithm, decodeMessage, encodeMessage, ZCertType } from "../../../src/proto/index.ts";
import type { AuthContainer, CompoundEdgeDevConfigRequest, ConfigRequest, FlowMessage, ZAttestReq, ZInfoMsg, ZMetricMsg, ZRegisterMsg } from "../../../src/proto/index.ts";
import { gzipHeader } from "../../../src/telemetry/newlogs.ts";
import { type Encrypted, encryptFor } from "./cipher.ts";
import type { ControllerPki, Issued } from "./pki.ts";

export type Fault =
  | "none"
  | "5xx" // every answer 503
  | "hang" // never answers
  | "slow" // answers headers, then one byte every 200 ms
  | "tamper" // config signature altered
  | "unknown-signer" // config signed by a certificate /certs does not list
  | "rogue-chain" // /certs and config move to a signing certificate from another root
  | "malformed" // config payload is not protobuf (but is signed)
  | "flood" // config of 500,000 empty apps in 1 MB (signed): memory amplification if decoded
  | "no-proto"; // config answered as text/plain

export interface DeviceRecord {
  uuid: string;
  certPem: string;
  certHash: string;
  key: CryptoKey;
  serial: string;
  softSerial: string;
  /** The device's ECDH exchange certificate (PEM bytes as sent with ATTEST_REQ_CERT), once it sent it. */
  ecdhCert?: Uint8Array;
}

export interface ReceivedLogs {
  path: string;
  header: { name: string | null; comment: string | null };
  entries: Record<string, unknown>[];
  at: number;
}

export class TestController {
  readonly devices = new Map<string, DeviceRecord>(); // by sha256(device cert DER), hex
  readonly infos: ZInfoMsg[] = [];
  readonly metrics: ZMetricMsg[] = [];
  readonly logs: ReceivedLogs[] = [];
  readonly flows: FlowMessage[] = [];
  readonly requests: { method: string; path: string; status: number; at: number }[] = [];
  /** Each ZAttestReq received: its device and reqType (1 cert, 2 nonce, 3 quote). */
  readonly attests: { uuid: string; reqType: number }[] = [];
  configs = new Map<string, Record<string, unknown>>(); // device uuid → EdgeDevConfig (plain object)
  fault: Fault = "none";
  requireAttestation = false;
  /** Onboarding: which (onboarding cert, serial) pairs may register; null accepts any with a known onboarding cert. */
  registerAnswer: number | null = null;
  private nonces = new Map<string, Uint8Array>();
  private tokens = new Map<string, Uint8Array>();
  private server: ReturnType<typeof Bun.serve> | null = null;
  private signing: Issued;
  private hangs = new Set<() => void>();

  /**
   * As a Local Operator Console (`startLoc`): what it adds beside the relayed config (EVE's CompoundEdgeDevConfig
   * timestamp and local commands), and each compound-config request's last_cmd_timestamp and configHash.
   */
  compound: { timestamp: number; devCmd?: Record<string, unknown>; appCmdList?: Record<string, unknown> } = { timestamp: 0 };
  readonly compoundRequests: { lastCmdTimestamp: string; configHash: string }[] = [];

  private constructor(
    readonly pki: ControllerPki,
    private port: number,
    private readonly plain = false,
  ) {
    this.signing = pki.signing;
  }

  static async start(pki: ControllerPki, port = 0): Promise<TestController> {
    const c = new TestController(pki, port);
    c.listen();
    return c;
  }

  /**
   * A Local Operator Console over plain http, as EVE's LOC may be: it relays the configs the controller signed
   * (same PKI: signed with the controller's signing key, as a LOC holds them) and knows the controller's devices.
   */
  static async startLoc(pki: ControllerPki, controller: TestController): Promise<TestController> {
    const c = new TestController(pki, 0, true);
    for (const [k, d] of controller.devices) c.devices.set(k, d);
    c.listen();
    return c;
  }

  get url(): string {
    return `${this.plain ? "http" : "https"}://127.0.0.1:${this.port}`;
  }

  get listenPort(): number {
    return this.port;
  }

  listen(): void {
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: this.port,
      idleTimeout: 0,
      ...(this.plain ? {} : { tls: { cert: this.pki.tls.cert, key: this.pki.tls.keyPem } }),
      fetch: (req) => this.handle(req),
    });
    this.port = this.server.port!;
  }

  /** Stops answering (the controller is down); listen() brings it back on the same port. */
  async down(): Promise<void> {
    for (const h of this.hangs) h();
    this.hangs.clear();
    await this.server?.stop(true);
    this.server = null;
  }

  async close(): Promise<void> {
    await this.down();
  }

  /** Sets the config for a device; the hash is Adam's (base64url of sha256 of the encoded config). */
  setConfig(deviceUuid: string, config: Record<string, unknown>): void {
    this.configs.set(deviceUuid, { ...config, id: { uuid: deviceUuid, version: String((config.id as any)?.version ?? "1") } });
  }

  configHash(deviceUuid: string): string {
    const cfg = this.configs.get(deviceUuid);
    if (!cfg) return "";
    return Buffer.from(sha256(encodeMessage("org.lfedge.eve.config.EdgeDevConfig", cfg))).toString("base64url");
  }

  /** Pre-registers a device by its certificate (the flow without an onboarding certificate). */
  async addDevice(certPem: string, uuid: string = crypto.randomUUID()): Promise<DeviceRecord> {
    const der = pemBlocks(certPem)[0]!;
    const x = new X509Certificate(certPem);
    const key = await crypto.subtle.importKey("spki", x.publicKey.export({ type: "spki", format: "der" }), P256_ECDSA, false, ["verify"]);
    const rec: DeviceRecord = { uuid, certPem, certHash: Buffer.from(sha256(der)).toString("hex"), key, serial: "", softSerial: "" };
    this.devices.set(rec.certHash, rec);
    return rec;
  }

  /** Encrypts an EncryptionBlock for a device as a controller does (its ECDH certificate must have arrived). */
  encrypt(deviceUuid: string, plain: import("../../../src/proto/index.ts").EncryptionBlock, tamper?: "hash" | "device" | "controller"): Encrypted {
    const device = [...this.devices.values()].find((d) => d.uuid === deviceUuid);
    if (!device?.ecdhCert) throw new Error(`device ${deviceUuid} has not sent its ECDH certificate`);
    return encryptFor({ controllerEcdhKeyPem: this.pki.ecdh.keyPem, controllerEcdhCertPem: this.pki.ecdh.cert, deviceEcdhCert: device.ecdhCert, plain, tamper });
  }

  count(path: RegExp): number {
    return this.requests.filter((r) => path.test(r.path)).length;
  }

  // ---- HTTP

  private async handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const res = await this.route(req, path);
    this.requests.push({ method: req.method, path, status: res.status, at: Date.now() });
    return res;
  }

  private async route(req: Request, path: string): Promise<Response> {
    if (this.fault === "5xx") return new Response("controller is being upgraded", { status: 503 });
    if (this.fault === "hang") return new Promise<Response>((resolve) => this.hangs.add(() => resolve(new Response("", { status: 503 }))));
    if (this.fault === "slow") return this.dribble();
    const p = path.replace(/^\/api\/v2\/edgedevice/, "");
    if (req.method === "GET" && p === "/certs") return this.proto(await this.certs());
    if (req.method !== "POST") return new Response("not found", { status: 404 });
    if (req.headers.get("content-type") !== "application/x-proto-binary") return new Response("wrong content type", { status: 415 });
    const body = new Uint8Array(await req.arrayBuffer());
    if (p === "/register") return this.register(body);
    const auth = await this.verifyDevice(body);
    if (!auth) return new Response("unauthorized", { status: 401 });
    const { device, payload } = auth;
    if (p === "/uuid") return this.proto(await this.envelope(encodeMessage("org.lfedge.eve.uuid.UuidResponse", { uuid: device.uuid, manufacturer: "evebox tests" })));
    const m = p.match(/^\/id\/([0-9a-f-]{36})\/(.+)$/);
    if (!m || m[1] !== device.uuid) return new Response("unknown device", { status: 400 });
    const what = m[2]!;
    switch (what) {
      case "config":
        return this.config(device, payload);
      case "compound-config": {
        const creq = decodeMessage<CompoundEdgeDevConfigRequest>("org.lfedge.eve.config.CompoundEdgeDevConfigRequest", payload);
        this.compoundRequests.push({ lastCmdTimestamp: String(creq.lastCmdTimestamp ?? "0"), configHash: creq.cfgReq?.configHash ?? "" });
        const inner = await this.config(device, encodeMessage("org.lfedge.eve.config.ConfigRequest", creq.cfgReq ?? {}));
        if (inner.status !== 200 && inner.status !== 304) return inner;
        // A 304 of the config still carries the commands: the LOC answers the whole compound config.
        const protectedConfig = inner.status === 200 ? decodeMessage<AuthContainer>("org.lfedge.eve.auth.AuthContainer", new Uint8Array(await inner.arrayBuffer())) : await this.signedConfig(device);
        return this.proto(encodeMessage("org.lfedge.eve.config.CompoundEdgeDevConfig", { ...this.compound, protectedConfig }));
      }
      case "attest":
        return this.attest(device, payload);
      case "info":
        this.infos.push(decodeMessage<ZInfoMsg>("org.lfedge.eve.info.ZInfoMsg", payload));
        return new Response(null, { status: 201 });
      case "metrics":
        this.metrics.push(decodeMessage<ZMetricMsg>("org.lfedge.eve.metrics.ZMetricMsg", payload));
        return new Response(null, { status: 201 });
      case "newlogs":
        return this.newlogs(what, payload);
      case "flowlog":
        this.flows.push(decodeMessage<FlowMessage>("org.lfedge.eve.flowlog.FlowMessage", payload));
        return new Response(null, { status: 201 });
    }
    if (/^apps\/instanceid\/[0-9a-f-]{36}\/newlogs$/.test(what)) return this.newlogs(what, payload);
    return new Response("not found", { status: 404 });
  }

  private newlogs(path: string, gz: Uint8Array): Response {
    const h = gzipHeader(gz);
    const text = gunzipSync(gz).toString("utf8");
    const entries = text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    this.logs.push({ path, header: { name: h.name, comment: h.comment }, entries, at: Date.now() });
    return new Response(null, { status: 201 });
  }

  private dribble(): Response {
    let timer: ReturnType<typeof setInterval>;
    const stream = new ReadableStream<Uint8Array>({
      start: (ctl) => {
        timer = setInterval(() => {
          try {
            ctl.enqueue(new Uint8Array([0]));
          } catch {
            clearInterval(timer);
          }
        }, 200);
        this.hangs.add(() => {
          clearInterval(timer);
          try {
            ctl.close();
          } catch {}
        });
      },
      cancel: () => clearInterval(timer),
    });
    return new Response(stream, { status: 200, headers: { "Content-Type": "application/x-proto-binary" } });
  }

  private proto(bytes: Uint8Array, status = 200): Response {
    return new Response(bytes as Uint8Array<ArrayBuffer>, { status, headers: { "Content-Type": "application/x-proto-binary" } });
  }

  // ---- the API

  private async certs(): Promise<Uint8Array> {
    const zc = (pem: string, type: ZCertType) => {
      const bytes = new TextEncoder().encode(pem.trim());
      return { hashAlgo: CommonHashAlgorithm.HASH_ALGORITHM_SHA256_16BYTES, certHash: sha256(bytes).subarray(0, 16), type, cert: bytes };
    };
    const rogue = this.fault === "rogue-chain";
    const certs = [
      zc((rogue ? this.pki.rogueSigning : this.pki.signing).cert, ZCertType.CERT_TYPE_CONTROLLER_SIGNING),
      zc((rogue ? this.pki.rogueIntermediate : this.pki.intermediate).cert, ZCertType.CERT_TYPE_CONTROLLER_INTERMEDIATE),
      zc(this.pki.ecdh.cert, ZCertType.CERT_TYPE_CONTROLLER_ECDH_EXCHANGE),
    ];
    return this.envelope(encodeMessage("org.lfedge.eve.certs.ZControllerCert", { certs }));
  }

  /** Signs as Adam does: senderCertHash = sha256 of the signing certificate's PEM as sent in /certs; r‖s. */
  async envelope(payload: Uint8Array, signer: Issued = this.fault === "rogue-chain" ? this.pki.rogueSigning : this.signing): Promise<Uint8Array> {
    const sig = new Uint8Array(await crypto.subtle.sign(P256_ECDSA, signer.keys.privateKey, payload as Uint8Array<ArrayBuffer>));
    const container: AuthContainer = {
      protectedPayload: { payload },
      algo: CommonHashAlgorithm.HASH_ALGORITHM_SHA256_32BYTES,
      senderCertHash: sha256(new TextEncoder().encode(signer.cert.trim())),
      signatureHash: sig,
    };
    return encodeMessage("org.lfedge.eve.auth.AuthContainer", container);
  }

  private async verifyDevice(body: Uint8Array): Promise<{ device: DeviceRecord; payload: Uint8Array } | null> {
    let c: AuthContainer;
    try {
      c = decodeMessage<AuthContainer>("org.lfedge.eve.auth.AuthContainer", body);
    } catch {
      return null;
    }
    const device = this.devices.get(Buffer.from(c.senderCertHash ?? []).toString("hex"));
    if (!device || c.algo !== CommonHashAlgorithm.HASH_ALGORITHM_SHA256_32BYTES) return null;
    const payload = c.protectedPayload?.payload ?? new Uint8Array(0);
    const ok = await crypto.subtle.verify(P256_ECDSA, device.key, (c.signatureHash ?? new Uint8Array(0)) as Uint8Array<ArrayBuffer>, payload as Uint8Array<ArrayBuffer>);
    return ok ? { device, payload } : null;
  }

  private async register(body: Uint8Array): Promise<Response> {
    const c = decodeMessage<AuthContainer>("org.lfedge.eve.auth.AuthContainer", body);
    // As Adam: senderCert is base64 of the onboarding certificate's PEM; the signature must verify with it.
    const obPem = Buffer.from(new TextDecoder().decode(c.senderCert ?? new Uint8Array(0)), "base64").toString("utf8");
    if (obPem.trim() !== this.pki.onboarding.cert.trim()) return new Response("unknown onboarding certificate", { status: 401 });
    const payload = c.protectedPayload?.payload ?? new Uint8Array(0);
    const ok = await crypto.subtle.verify(P256_ECDSA, this.pki.onboarding.keys.publicKey, (c.signatureHash ?? new Uint8Array(0)) as Uint8Array<ArrayBuffer>, payload as Uint8Array<ArrayBuffer>);
    if (!ok) return new Response("bad signature", { status: 401 });
    if (this.registerAnswer) return new Response(null, { status: this.registerAnswer });
    const msg = decodeMessage<ZRegisterMsg>("org.lfedge.eve.register.ZRegisterMsg", payload);
    const devicePem = Buffer.from(new TextDecoder().decode(msg.pemCert ?? new Uint8Array(0)), "base64").toString("utf8");
    const der = pemBlocks(devicePem)[0];
    if (!der) return new Response("no device certificate", { status: 422 });
    const hash = Buffer.from(sha256(der)).toString("hex");
    const existing = [...this.devices.values()].find((d) => d.serial === msg.serial && d.softSerial === msg.softSerial && d.softSerial);
    if (existing && existing.certHash !== hash) return new Response(null, { status: 409 });
    if (existing) return new Response(null, { status: 200 });
    const rec = await this.addDevice(devicePem);
    rec.serial = msg.serial ?? "";
    rec.softSerial = msg.softSerial ?? "";
    return new Response(null, { status: 201 });
  }

  private async config(device: DeviceRecord, payload: Uint8Array): Promise<Response> {
    const req = decodeMessage<ConfigRequest>("org.lfedge.eve.config.ConfigRequest", payload);
    if (this.requireAttestation) {
      const token = this.tokens.get(device.uuid);
      if (!token || !req.integrityToken || Buffer.compare(Buffer.from(token), Buffer.from(req.integrityToken)) !== 0) return new Response("integrity token mismatch", { status: 403 });
    }
    const cfg = this.configs.get(device.uuid) ?? { id: { uuid: device.uuid, version: "0" } };
    const hash = this.configHash(device.uuid);
    if (req.configHash && req.configHash === hash && this.fault === "none") return new Response(null, { status: 304 });
    if (this.fault === "no-proto") return new Response("config", { status: 200, headers: { "Content-Type": "text/plain" } });
    let resp = encodeMessage("org.lfedge.eve.config.ConfigResponse", { config: cfg, configHash: hash });
    if (this.fault === "malformed") resp = new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);
    if (this.fault === "flood") {
      // ConfigResponse.config (field 1) holding EdgeDevConfig.apps (field 4) 500,000 times, each empty.
      const inner = new Uint8Array(1_000_000);
      for (let i = 0; i < inner.length; i += 2) inner[i] = 0x22;
      const n = inner.length;
      resp = new Uint8Array([0x0a, 0x80 | (n & 0x7f), 0x80 | ((n >> 7) & 0x7f), n >> 14, ...inner]);
    }
    const signer = this.fault === "unknown-signer" ? this.pki.rogueSigning : undefined;
    let env = await this.envelope(resp, signer);
    if (this.fault === "tamper") {
      const c = decodeMessage<AuthContainer>("org.lfedge.eve.auth.AuthContainer", env);
      c.signatureHash![10]! ^= 0x55;
      env = encodeMessage("org.lfedge.eve.auth.AuthContainer", c);
    }
    return this.proto(env);
  }

  private async signedConfig(device: DeviceRecord): Promise<AuthContainer> {
    const cfg = this.configs.get(device.uuid) ?? { id: { uuid: device.uuid, version: "0" } };
    const env = await this.envelope(encodeMessage("org.lfedge.eve.config.ConfigResponse", { config: cfg, configHash: this.configHash(device.uuid) }));
    return decodeMessage<AuthContainer>("org.lfedge.eve.auth.AuthContainer", env);
  }

  private async attest(device: DeviceRecord, payload: Uint8Array): Promise<Response> {
    const req = decodeMessage<ZAttestReq>("org.lfedge.eve.attest.ZAttestReq", payload);
    this.attests.push({ uuid: device.uuid, reqType: req.reqType ?? 0 });
    let out: Record<string, unknown>;
    if (req.reqType === 1) {
      // ATTEST_REQ_CERT: kept as Adam keeps them; the ECDH exchange certificate is what encryption needs.
      const ecdh = req.certs?.find((c) => c.type === ZCertType.CERT_TYPE_DEVICE_ECDH_EXCHANGE);
      if (!ecdh?.cert?.length) return new Response("no ECDH certificate", { status: 400 });
      const expected = sha256(ecdh.cert).subarray(0, 16);
      if (Buffer.compare(Buffer.from(expected), Buffer.from(ecdh.certHash ?? [])) !== 0) return new Response("certHash is not sha256(cert)[:16]", { status: 400 });
      device.ecdhCert = ecdh.cert;
      out = { respType: 1 };
    } else if (req.reqType === 2) {
      const nonce = crypto.getRandomValues(new Uint8Array(12));
      this.nonces.set(device.uuid, nonce);
      out = { respType: 2, nonce: { nonce } };
    } else if (req.reqType === 3) {
      if (!this.nonces.has(device.uuid)) return new Response("no nonce issued", { status: 400 });
      // As Adam without a TPM: a quote with no PCR values succeeds and earns an integrity token.
      const token = new TextEncoder().encode(Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex"));
      this.tokens.set(device.uuid, token);
      out = { respType: 3, quoteResp: { response: 1, integrityToken: token } };
    } else {
      return new Response("not implemented", { status: 400 });
    }
    return this.proto(await this.envelope(encodeMessage("org.lfedge.eve.attest.ZAttestResponse", out)), 201);
  }
}
