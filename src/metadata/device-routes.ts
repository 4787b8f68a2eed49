// The metadata server's routes beyond the network identity and the patch envelopes (eve docs/ECO-METADATA.md,
// pkg/pillar/cmd/msrv): each answered as EVE answers it where it means something on evebox, else with an explicit
// answer that says why (README "Routes"). The caller was checked by the service's middleware (a known app within
// its budget) before any of these runs.
import type { Context, Hono } from "hono";
import type { CipherBlockModel, CipherContextModel, OpenedBlock } from "../config/cipher.ts";
import type { DeviceModel } from "../config/model.ts";
import type { PortMetric } from "./netdev.ts";

/** What these routes need of the device, beside the caller (all optional: absent, the route says it cannot). */
export interface DeviceRouteDeps {
  model(): { model: DeviceModel } | null;
  device(): { uuid: string | null; name: string };
  /** Every app interface on a Local instance with its reserved address and host-side name (discover-network.json). */
  appInterfaces?(): { appUuid: string; hostIfname: string; ip: string }[];
  /** The device's ports with their counters (networks/metrics.json). */
  portMetrics?(): PortMetric[];
  /** The device's summary as text (diag). */
  diag?(): string;
  /** Signs a payload as the device: an AuthContainer (controller/envelope.ts `seal`, the device's key). */
  sign?(payload: Uint8Array): Promise<Uint8Array>;
  /** Opens an app's protected user data (OpenStack user_data of an app whose userData is encrypted). */
  open?(block: CipherBlockModel, ctx: CipherContextModel | null): Promise<OpenedBlock>;
  /** Where /metrics is forwarded (EVE: the node exporter at localhost:9100). */
  nodeExporter?: string;
}

export interface DeviceRouteCaller {
  appUuid: string;
  appName: string;
  /** The caller's interface has `allowToDiscover`. */
  allowToDiscover?: boolean;
}

/** EVE's limits: what the signer signs (SignerMaxSize), what diag answers (DiagMaxSize). */
export const SIGNER_MAX = 65535;
export const DIAG_MAX = 65535;
/** What is read of the node exporter's answer at most. */
const METRICS_MAX = 8 * 1024 * 1024;

type Env = { Bindings: { ip: string; port: number } };

/** A response's body, or null when it is over `max` bytes (read no further than that). */
async function readAtMost(r: Response, max: number): Promise<Uint8Array | null> {
  if (Number(r.headers.get("content-length") ?? 0) > max) return null;
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = r.body?.getReader();
  if (!reader) return new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > max) {
      await reader.cancel();
      return null;
    }
    parts.push(value);
  }
  return Buffer.concat(parts);
}

export function deviceRoutes(app: Hono<Env>, deps: DeviceRouteDeps, caller: (c: Context<Env>) => DeviceRouteCaller): void {
  // Cellular modems: evebox manages none. EVE with no modem publishes a WwanStatus without networks (its JSON has
  // no tags: these keys) and no WwanMetrics at all (204).
  app.get("/eve/v1/wwan/status.json", (c) => c.json({ DPCKey: "", DPCTimestamp: "0001-01-01T00:00:00Z", RSConfigTimestamp: "0001-01-01T00:00:00Z", Networks: null }));
  app.get("/eve/v1/wwan/metrics.json", (c) => c.body(null, 204));

  app.get("/eve/v1/networks/metrics.json", (c) => {
    if (!deps.portMetrics) return c.body(null, 204); // EVE, before its device network status is known
    return c.json(deps.portMetrics());
  });

  // EVE: the other app instances' addresses, for an app whose interface has allowToDiscover; 403 otherwise.
  app.get("/eve/v1/discover-network.json", (c) => {
    const who = caller(c);
    if (!who.allowToDiscover) return c.json({ message: "This app instance is not allowed to discover" }, 403);
    const model = deps.model()?.model;
    const ifs = deps.appInterfaces?.() ?? [];
    const out: Record<string, { port: string; "network-address": string }[]> = {};
    for (const a of model?.apps ?? []) {
      if (a.uuid === who.appUuid) continue;
      out[a.uuid] = ifs.filter((i) => i.appUuid === a.uuid).map((i) => ({ port: i.hostIfname, "network-address": i.ip }));
    }
    return c.json(out);
  });

  // EVE serves the text its diag agent writes to the console; evebox's is a summary of the same kind (the device,
  // its controller link, each object's state and error), bounded as EVE's (64 KiB).
  app.get("/eve/v1/diag", (c) => {
    if (!deps.diag) return c.json({ message: "diagHandler: file not found" }, 404);
    let text = deps.diag();
    if (text.length > DIAG_MAX) text = `${text.slice(0, DIAG_MAX - 64)}\n… (cut at ${DIAG_MAX} bytes)\n`;
    return c.body(text, 200, { "Content-Type": "text/plain; charset=utf-8" });
  });

  // The signer: EVE signs what the app posts with the device's key (controllerconn AddAuthentication: an
  // AuthContainer, the key a TPM's when there is one, else the device's own key file). evebox has no TPM: its
  // device key, the one its controller traffic is signed with.
  app.post("/eve/v1/tpm/signer", async (c) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    if (body.length > SIGNER_MAX) return c.json({ message: `signerHandler: size exceeds limit. Expected <= ${SIGNER_MAX}` }, 400);
    if (!deps.sign) return c.json({ message: "Failed to AddAuthentication: this device has no signing key available yet" }, 500);
    try {
      const signed = await deps.sign(body);
      return c.body(signed as Uint8Array<ArrayBuffer>, 200, { "Content-Type": "application/x-proto-binary" });
    } catch (e) {
      return c.json({ message: `Failed to AddAuthentication: ${(e as Error).message}` }, 500);
    }
  });

  // Activate-credential needs the TPM's endorsement and attestation keys: EVE without them answers 500
  // "Operation failed"; so does evebox, saying why.
  const noTpm = (c: Context<Env>) => c.json({ message: "Operation failed: this device has no TPM (activate-credential needs its EK and AIK)" }, 500);
  for (const p of ["/eve/v1/tpm/activatecredential", "/eve/v1/tpm/activatecredential/"]) {
    app.get(p, noTpm);
    app.post(p, noTpm);
  }

  // EVE takes a Kubernetes cluster's kubeconfig from the app that runs it (to the controller); evebox refuses
  // Kubernetes (a device cluster config is refused), so there is no such app to take one from.
  app.post("/eve/v1/kubeconfig", (c) => c.json({ message: "this device runs no Kubernetes cluster (clustering is refused on evebox): no kubeconfig is taken" }, 501));

  // EVE's /metrics: the node exporter's answer, forwarded (host metrics); 502 when it does not answer.
  app.get("/metrics", async (c) => {
    const target = deps.nodeExporter ?? "http://127.0.0.1:9100";
    try {
      const r = await fetch(`${target}/metrics`, { signal: AbortSignal.timeout(5000), redirect: "manual" });
      const body = await readAtMost(r, METRICS_MAX);
      if (!body) return c.json({ message: `the node exporter's answer is over ${METRICS_MAX} bytes` }, 502);
      return c.body(body as Uint8Array<ArrayBuffer>, r.status as 200, { "Content-Type": r.headers.get("content-type") ?? "text/plain; version=0.0.4" });
    } catch (e) {
      return c.json({ message: `no node exporter answers at ${target} (EVE forwards /metrics to one): ${(e as Error).message}` }, 502);
    }
  });

  // AppCustom blobs: EVE lists an app's AppCustom disks in app/info.json and serves them here; evebox gives an app
  // no AppCustom volume, so there is none (app/info.json: AppBlobs null).
  app.get("/eve/app-custom-blobs/*", (c) => c.json({ message: "no such AppCustom blob: evebox gives apps no AppCustom volumes" }, 404));

  // OpenStack-style metadata, for an app whose metaDataType is MetaDataOpenStack (as EVE; 404 for others).
  const openstack = async (c: Context<Env>) => {
    const who = caller(c);
    const m = deps.model()?.model;
    const a = m?.apps.find((x) => x.uuid === who.appUuid);
    if (!a || a.metaDataType !== "MetaDataOpenStack") return c.json({ message: `no MetaDataOpenStack for ${who.appUuid}` }, 404);
    const file = c.req.path.replace(/\/+$/, "").split("/").pop();
    switch (file) {
      case "openstack":
        return c.text("latest\n");
      case "meta_data.json":
        // EVE offers no SSH keys there (its getSSHPublicKeys returns none).
        return c.json({ uuid: a.uuid, hostname: a.name, name: a.name, launch_index: 0, keys: null, public_keys: {} });
      case "network_data.json":
        return c.json({ services: [], networks: [] });
      case "vendor_data.json":
        return c.json({});
      case "user_data": {
        let text = a.userData.text ?? "";
        if (a.cipher) {
          if (!deps.open) return c.json({ message: `cannot get userData for ${a.uuid}: its protected user data cannot be opened on this device` }, 500);
          try {
            const opened = await deps.open(a.cipher, m!.cipherContexts.find((x) => x.id === a.cipher!.contextId) ?? null);
            text = Buffer.from(String(opened.protectedUserData ?? ""), "base64").toString();
          } catch (e) {
            return c.json({ message: `cannot get userData for ${a.uuid}: ${(e as Error).message}` }, 500);
          }
        }
        return c.body(text, 200, { "Content-Type": "text/yaml" });
      }
      default:
        return c.json({ message: "not found" }, 404);
    }
  };
  app.get("/openstack", openstack);
  app.get("/openstack/*", openstack);
}
