// App, volume and content-tree lifecycle states, named once, as EVE's pillar names them
// (pkg/pillar/types SwState), so an EVE user reads evebox's status without a glossary.

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
