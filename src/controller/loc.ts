// The Local Operator Console (EVE's LOC, `loc_config`): where an air-gapped or cut-off device gets the config
// when its controller cannot be reached. The LOC relays what the controller signed — a CompoundEdgeDevConfig
// whose `protected_config` is the controller's AuthContainer around a ConfigResponse — so the device checks it
// exactly as it checks the controller's own answer; a LOC cannot make up a config. Pure helpers (EVE's
// zedagent handleconfig.go: `compound-config` under the device's path, the request carrying the last command
// timestamp it processed); sync.ts runs them.
import {
  decodeMessage,
  encodeMessage,
  type CompoundEdgeDevConfig,
  type CompoundEdgeDevConfigRequest,
  type ConfigRequest,
  type LocalAppCmdList,
  type LocalDevCmd,
  type RadioConfig,
} from "../proto/index.ts";

const API = "/api/v2/edgedevice";

/** What the LOC says besides the config: the local commands of EVE's LPS, carried inside the compound config. */
export interface LocCommands {
  /** The compound config's timestamp: the commands are new when it moved past the last one acknowledged. */
  timestamp: string;
  devCmd: LocalDevCmd | null;
  appCmdList: LocalAppCmdList | null;
  radioConfig: RadioConfig | null;
}

export interface LocStatus {
  /** The LOC of the current config (`loc_config.loc_url`), null without one. */
  url: string | null;
  /** The last time it answered anything. */
  lastContact: string | null;
  /** The last config taken from it (its configHash and when). */
  lastConfig: { hash: string; at: string } | null;
  /** The running config came from the LOC (not from the controller) the last time one was applied. */
  configFromLoc: boolean;
  /** The compound config timestamp acknowledged (EVE's last_cmd_timestamp). */
  lastCmdTimestamp: string;
  /** Info and metrics messages it accepted, and refused or unreachable ones (best effort, never queued). */
  sent: { info: number; metrics: number; failed: number };
  lastError: { message: string; at: string } | null;
}

/** `<loc>/api/v2/edgedevice/id/<uuid>/<what>` (EVE's URLPathString); `certs` has no device part. */
export function locPath(what: "compound-config" | "info" | "metrics" | "certs", uuid: string | null): string {
  return uuid && what !== "certs" ? `${API}/id/${uuid}/${what}` : `${API}/${what}`;
}

export function compoundRequest(cfgReq: ConfigRequest, lastCmdTimestamp: string): Uint8Array {
  const req: CompoundEdgeDevConfigRequest = { lastCmdTimestamp: lastCmdTimestamp || "0", cfgReq };
  return encodeMessage("org.lfedge.eve.config.CompoundEdgeDevConfigRequest", req);
}

/**
 * The LOC's answer: the controller's AuthContainer (re-encoded, to be opened with the controller's certificates)
 * and the commands. Throws with the reason when it is not a compound config or carries no protected config.
 */
export function readCompound(bytes: Uint8Array): { signed: Uint8Array; commands: LocCommands } {
  let cc: CompoundEdgeDevConfig;
  try {
    cc = decodeMessage<CompoundEdgeDevConfig>("org.lfedge.eve.config.CompoundEdgeDevConfig", bytes);
  } catch (e) {
    throw new Error(`malformed CompoundEdgeDevConfig: ${(e as Error).message}`);
  }
  if (!cc.protectedConfig) throw new Error("the compound config carries no protected (controller-signed) config");
  return {
    signed: encodeMessage("org.lfedge.eve.auth.AuthContainer", cc.protectedConfig),
    commands: { timestamp: String(cc.timestamp ?? "0"), devCmd: cc.devCmd ?? null, appCmdList: cc.appCmdList ?? null, radioConfig: cc.radioConfig ?? null },
  };
}

/** Two uint64 timestamps as decimal strings: a > b. */
export function isNewer(a: string, b: string): boolean {
  try {
    return BigInt(a || "0") > BigInt(b || "0");
  } catch {
    return false;
  }
}
