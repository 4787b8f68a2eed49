// The read models every part and the console share: the state of a part, of a desired object, of the device.
// Nothing here imports another folder, so any part (and ui/) can import it without a cycle.

/** The state of one part of the device (runtime, network, controller, …) as GET /status lists it. */
export interface PartStatus {
  name: string;
  state: "ok" | "degraded" | "error" | "idle";
  detail: string;
}

/** A desired object (app, network instance, volume, content tree) joined with what was observed of it. */
export interface ObjectStatus {
  uuid: string;
  name: string;
  state: string;
  error: string | null;
  [k: string]: unknown;
}

export interface DeviceStatus {
  device: {
    name: string;
    version: string;
    mode: "local" | "managed";
    controller: string | null;
    uptimeSeconds: number;
    startedAt: string;
    hostname: string;
    arch: string;
    memoryBytes: number;
    configVersion: number | null;
    configHash: string | null;
    configSource: string | null;
  };
  parts: PartStatus[];
  apps: ObjectStatus[];
  networkInstances: ObjectStatus[];
  volumes: ObjectStatus[];
  contentTrees: ObjectStatus[];
}

/** Something that reports the state of one part of the device. */
export type PartReporter = () => PartStatus;

/** Local app commands (EVE's local profile server allows them even when a controller manages the device). */
export interface AppCommands {
  /** `by`: who asked (the console's user, an API token), for the Activity log. */
  localCommand(uuid: string, command: "start" | "stop" | "restart" | "purge", by?: string): void;
}

/** The controller part as the device and the console see it (controller/sync.ts implements it). */
export interface ControllerLink {
  /** The controller's https://host[:port], or null in local mode. */
  url(): string | null;
  part(): PartStatus;
  /** The controller's state; a local-mode device may load the controller's code to answer. */
  status(): object | Promise<object>;
  configure(input: { url?: unknown; rootCertificate?: unknown }): Promise<object>;
}
