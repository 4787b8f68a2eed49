// App, volume and content-tree lifecycle states, named once, as EVE's pillar names them
// (pkg/pillar/types SwState), so an EVE user reads evebox's status without a glossary.
import { ZSwState } from "../proto/index.ts";

export const SW_STATES = [
  "INITIAL",
  "RESOLVING_TAG",
  "RESOLVED_TAG",
  "DOWNLOADING",
  "DOWNLOADED",
  "VERIFYING",
  "VERIFIED",
  "LOADING",
  "LOADED",
  "CREATING_VOLUME",
  "CREATED_VOLUME",
  "INSTALLED",
  "AWAITNETWORKINSTANCE",
  "START_DELAYED",
  "BOOTING",
  "RUNNING",
  "HALTING",
  "HALTED",
  "RESTARTING",
  "PURGING",
  "BROKEN",
  "ERROR",
] as const;

export type SwState = (typeof SW_STATES)[number];

/** The wire value for ZInfo messages (info.proto's ZSwState); BROKEN reports as HALTED with the error, as EVE does. */
export function toZSwState(s: SwState): number {
  switch (s) {
    case "DOWNLOADING":
      return ZSwState.DOWNLOAD_STARTED;
    case "BROKEN":
      return ZSwState.HALTED;
    default:
      return (ZSwState as unknown as Record<string, number>)[s] ?? ZSwState.INVALID;
  }
}
