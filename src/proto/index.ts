// EVE API v2 protobuf runtime: the descriptor generated from proto/ (no .proto parsing at
// runtime), plus typed encode/decode helpers. See README.md in this folder.

import protobuf from "protobufjs";
import configDescriptor from "./config-descriptor.gen.json";

export * from "./types.gen.ts";

/**
 * Options used by decodeMessage / toPlainObject to turn protobufjs message instances into
 * plain objects matching the generated interfaces:
 * - longs: String   64-bit integers become decimal strings (no precision loss)
 * - enums: Number   enums stay numeric (the generated TS enums are numeric)
 * - bytes: as is    bytes stay Uint8Array (a Buffer under Bun/Node, which is a Uint8Array)
 * - defaults: false proto3 zero values are left out (absent field == default)
 * - arrays: true    repeated fields are always present, [] when empty
 * - objects: true   map fields are always present, {} when empty
 * - oneofs: false   no virtual "which member is set" property
 */
export const TO_OBJECT_OPTIONS: Readonly<protobuf.IConversionOptions> = Object.freeze({
  longs: String,
  enums: Number,
  defaults: false,
  arrays: true,
  objects: true,
  oneofs: false,
});

let root: protobuf.Root | undefined;

/** The resolved protobufjs Root holding every EVE API type; built once, on first use. */
export function protoRoot(): protobuf.Root {
  if (!root) {
    // The whole descriptor (270 KB of JSON) is read only here: a device without a controller never needs it.
    const descriptor = require("./descriptor.gen.json") as protobuf.INamespace;
    root = protobuf.Root.fromJSON(descriptor);
    root.resolveAll();
    // From now on the config's types come from this root too; the config-only one is let go.
    configRoot = undefined;
    configTypes.clear();
  }
  return root;
}

const typeCache = new Map<string, protobuf.Type>();

/** Looks up a message type by full name, e.g. "org.lfedge.eve.config.EdgeDevConfig". */
export function lookupType(fullName: string): protobuf.Type {
  let t = typeCache.get(fullName);
  if (!t) {
    t = protoRoot().lookupType(fullName.replace(/^\./, ""));
    typeCache.set(fullName, t);
  }
  return t;
}

let configRoot: protobuf.Root | undefined;
const configTypes = new Map<string, protobuf.Type>();

/**
 * A type of the config (EdgeDevConfig and what its fields reach), for reading and writing configs. Until the whole
 * root is built (a controller, or another message, asked for it) these come from a root of only the config's
 * types (config-descriptor.gen.json: a quarter of the descriptor; ~20 ms and ~2 MiB less on a device in local
 * mode); once it is, from the whole root, so the config's types never exist twice. Wire and JSON forms are the
 * same either way: the types are the same definitions (proto.test.ts).
 */
export function configType(fullName: string): protobuf.Type {
  if (root) return lookupType(fullName);
  let t = configTypes.get(fullName);
  if (!t) {
    if (!configRoot) {
      configRoot = protobuf.Root.fromJSON(configDescriptor as protobuf.INamespace);
      configRoot.resolveAll();
    }
    t = configRoot.lookupType(fullName.replace(/^\./, ""));
    configTypes.set(fullName, t);
  }
  return t;
}

/** Serializes a plain object (generated interface shape) to protobuf wire bytes. */
export function encodeMessage<T extends object>(fullName: string, obj: T): Uint8Array {
  const type = lookupType(fullName);
  return type.encode(type.fromObject(obj as Record<string, unknown>)).finish();
}

/** Parses protobuf wire bytes into a plain object (see TO_OBJECT_OPTIONS). Throws on malformed input. */
export function decodeMessage<T extends object>(fullName: string, bytes: Uint8Array): T {
  const type = lookupType(fullName);
  return type.toObject(type.decode(bytes), TO_OBJECT_OPTIONS) as T;
}

/** Normalizes a plain object through the schema (coerces numbers, enum names, base64 bytes). */
export function toPlainObject<T extends object>(fullName: string, obj: object): T {
  const type = lookupType(fullName);
  return type.toObject(type.fromObject(obj as Record<string, unknown>), TO_OBJECT_OPTIONS) as T;
}
