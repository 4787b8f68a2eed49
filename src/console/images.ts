// The console's /api/v1/images routes: images brought onto the device by hand (storage/images.ts), either in one
// request (POST /images?name=) or resumably in an upload session (POST /images/uploads, then PATCH …?offset=
// until complete; GET answers the offset to continue from). Mounted by app.ts behind its authentication and
// Origin checks; refusals are thrown and answered by the app's onError (console/errors.ts).
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import * as v from "valibot";
import type { EventBus } from "../model/events.ts";
import type { ConfigService } from "../config/service.ts";
import { type ImportedImage, ImageStore, type UploadSession } from "../storage/images.ts";
import { requires } from "../model/roles.ts";
import { HttpError } from "./errors.ts";
import { describe, jsonAnswer } from "./openapi.ts";
import { check } from "./validate.ts";

// ---- shapes
export const ImageNameQuery = v.object({ name: v.pipe(v.string(), v.description("the image's name: 1 to 128 characters of one line of text")) });
export const UploadBody = v.object({
  name: v.pipe(v.string(), v.description("the image's name: 1 to 128 characters of one line of text")),
  size: v.pipe(v.number(), v.description("the file's size in bytes; the upload is complete when this many bytes arrived")),
});
export const OffsetQuery = v.object({
  offset: v.optional(v.pipe(v.string(), v.description("where these bytes go: the upload's offset (or send the Upload-Offset header)"))),
});
const ContainerFacts = v.object({
  configDigest: v.nullable(v.string()),
  manifestDigests: v.array(v.string()),
  repoTags: v.array(v.string()),
  architecture: v.nullable(v.string()),
  os: v.nullable(v.string()),
});
export const ImageBody = v.pipe(
  v.object({
    sha256: v.pipe(v.string(), v.description("hex: the image's address in the content store; a content tree with this sha256 is never downloaded")),
    name: v.string(),
    size: v.number(),
    format: v.picklist(["qcow2", "raw", "iso", "vmdk", "vhdx", "vhd", "docker-archive", "oci-layout"]),
    kind: v.picklist(["disk", "container"]),
    eveFormat: v.pipe(v.string(), v.description("the content tree's iformat: QCOW2, RAW, ISO, VMDK, VHDX, VHD or CONTAINER")),
    virtualSize: v.nullable(v.number()),
    container: v.nullable(ContainerFacts),
    importedAt: v.string(),
  }),
  v.title("Image"),
);
const User = v.object({ uuid: v.string(), name: v.string() });
export const ImageListBody = v.object({
  images: v.array(v.object({ ...ImageBody.entries, usedBy: v.object({ contentTrees: v.array(User), apps: v.array(User) }) })),
  uploads: v.array(v.lazy(() => SessionBody)),
});
export const SessionBody = v.pipe(
  v.object({ id: v.string(), name: v.string(), size: v.number(), offset: v.pipe(v.number(), v.description("bytes received and kept: send the rest from here")), createdAt: v.string(), updatedAt: v.string() }),
  v.title("UploadSession"),
);

export interface ImageRoutesOptions {
  images: () => ImageStore | null;
  config: Pick<ConfigService, "model">;
  events: EventBus;
}

const OCTETS = "application/octet-stream";
const octetBody = { required: true, content: { [OCTETS]: { schema: { type: "string" as const, format: "binary" } } } };
const shaParam = [{ name: "sha256", in: "path" as const, required: true, schema: { type: "string" as const }, description: "the image's sha256 (hex, or sha256:<hex>)" }];
const idParam = [{ name: "id", in: "path" as const, required: true, schema: { type: "string" as const }, description: "the upload's id" }];
const refusals = {
  400: "a bad name or size, or the file is refused by a check (a qcow2 with a backing file, an external data file, a damaged archive): nothing was stored",
  413: "larger than the device accepts, or not enough free space",
  415: "not sent as application/octet-stream, or not a disk image or a container image tarball (an HTML page, a text file, …): nothing was stored",
};

export function imageRoutes(o: ImageRoutesOptions) {
  const small = bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ error: "request body too large (limit 64 KiB)" }, 413) });
  const need = () => {
    const s = o.images();
    if (!s) throw new HttpError("not-implemented", "this device has no image store");
    return s;
  };
  const octets = (c: Context) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== OCTETS) throw new HttpError("unsupported-type", `send the image file as Content-Type: ${OCTETS}`);
  };
  /** A refusal before the body was read: do not leave the sender sending the rest. */
  const refuseEarly = async (c: Context, e: unknown): Promise<never> => {
    await c.req.raw.body?.cancel().catch(() => {});
    throw e;
  };
  const users = (sha: string) => ImageStore.users(o.config.model()?.model ?? null, sha);
  const imported = (img: ImportedImage, how: string) =>
    o.events.publish({ type: "image.imported", message: `image "${img.name}" imported (${img.format}, ${img.size} bytes, sha256 ${img.sha256}) ${how}`, data: { sha256: img.sha256, format: img.format } });
  const refusedEvent = (name: string, e: unknown) => {
    if (e instanceof Error && (e as { kind?: string }).kind) o.events.publish({ type: "image.refused", message: e.message, data: { name } });
  };
  const offsetOf = (c: Context, q: string | undefined): number => {
    const raw = q ?? c.req.header("upload-offset");
    if (raw === undefined || !/^\d+$/.test(raw)) throw new HttpError("invalid", "offset: where these bytes go (?offset= or the Upload-Offset header), a whole number");
    return Number(raw);
  };
  const sessionHeaders = (c: Context, s: UploadSession) => {
    c.header("Upload-Offset", String(s.offset));
    c.header("Upload-Length", String(s.size));
    c.header("Cache-Control", "no-store");
  };

  return new Hono()
    .get("/", requires("viewer"), describe({ tag: "images", summary: "The imported images (each with the content trees and apps of the current config that use it) and the uploads in progress", ok: { 200: jsonAnswer("`{images, uploads}`", ImageListBody) } }), async (c) => {
      const s = need();
      const images = (await s.list()).map((img) => ({ ...img, usedBy: users(img.sha256) }));
      return c.json({ images, uploads: await s.uploads() });
    })
    .post(
      "/",
      requires("admin"),
      describe({
        tag: "images",
        summary: "Import an image in one request: the file is the body (application/octet-stream); not resumable (see /images/uploads)",
        description: "Streamed to disk while hashed, then detected (qemu-img info for disks) and checked like downloaded content; stored by its sha256. Up to 2 GiB in one request (the listener's limit); larger files through an upload session.",
        requestBody: octetBody,
        ok: { 201: jsonAnswer("imported (or already there: the same bytes)", ImageBody) },
        errors: refusals,
      }),
      check("query", ImageNameQuery),
      async (c) => {
        const s = need();
        const { name } = c.req.valid("query");
        try {
          octets(c);
        } catch (e) {
          return refuseEarly(c, e);
        }
        const len = c.req.header("content-length");
        try {
          const img = await s.importStream(name, c.req.raw.body, len !== undefined && /^\d+$/.test(len) ? Number(len) : null, c.req.raw.signal);
          imported(img, "in one request");
          return c.json(img, 201);
        } catch (e) {
          refusedEvent(name, e);
          return refuseEarly(c, e);
        }
      },
    )
    .delete(
      "/:sha256",
      requires("admin"),
      describe({ tag: "images", summary: "Remove an imported image", parameters: shaParam, ok: { 200: jsonAnswer("removed: `{ok, image}`") }, errors: { 400: "not a sha256", 404: "no such image", 409: "a content tree of the current config uses it: `contentTrees` and `apps` name who" } }),
      async (c) => {
        const sha = c.req.param("sha256");
        const img = await need().remove(sha, users(sha));
        o.events.publish({ type: "image.removed", message: `image "${img.name}" (sha256 ${img.sha256}) removed`, data: { sha256: img.sha256 } });
        return c.json({ ok: true as const, image: img });
      },
    )
    .post(
      "/uploads",
      requires("admin"),
      describe({
        tag: "images",
        summary: "Open a resumable upload of `size` bytes named `name`; send the bytes with PATCH /images/uploads/{id}",
        description: "The name, the size limit and the free space are checked here, before any byte is sent.",
        ok: { 201: jsonAnswer("opened: the session (offset 0)", SessionBody) },
        errors: { 400: "a bad name or size", 413: "larger than the device accepts, or not enough free space", 429: "too many uploads open" },
      }),
      small,
      check("json", UploadBody),
      async (c) => {
        const body = c.req.valid("json");
        const session = await need().createUpload(body.name, body.size);
        sessionHeaders(c, session);
        c.header("Location", `/api/v1/images/uploads/${session.id}`);
        return c.json(session, 201);
      },
    )
    .get("/uploads", requires("viewer"), describe({ tag: "images", summary: "The uploads in progress", ok: { 200: jsonAnswer("`{uploads}`") } }), async (c) => c.json({ uploads: await need().uploads() }))
    .get(
      "/uploads/:id",
      requires("viewer"),
      describe({ tag: "images", summary: "An upload: where it stands (HEAD answers the same headers: Upload-Offset, Upload-Length)", parameters: idParam, ok: { 200: jsonAnswer("the session; continue from `offset`", SessionBody) }, errors: { 404: "no such upload (finished, cancelled or abandoned)" } }),
      async (c) => {
        const session = await need().upload(c.req.param("id"));
        sessionHeaders(c, session);
        return c.json(session);
      },
    )
    .patch(
      "/uploads/:id",
      requires("admin"),
      describe({
        tag: "images",
        summary: "Send bytes of an upload from `offset` (application/octet-stream); the request that completes it stores the image",
        description:
          "A dropped connection keeps every byte received: GET the upload for its offset and send the rest from there. An offset other than the upload's is refused (409 with `offset`). A PATCH to an upload that is still receiving supersedes the older request.",
        parameters: idParam,
        requestBody: octetBody,
        ok: { 200: jsonAnswer("received, not complete yet: the session", SessionBody), 201: jsonAnswer("complete: the image, detected, checked and stored", ImageBody) },
        errors: { ...refusals, 404: "no such upload", 409: "not the upload's offset (`offset` says where it stands), or it is being checked" },
      }),
      check("query", OffsetQuery),
      async (c) => {
        const s = need();
        const id = c.req.param("id");
        let offset: number;
        try {
          octets(c);
          offset = offsetOf(c, c.req.valid("query").offset);
        } catch (e) {
          return refuseEarly(c, e);
        }
        let result;
        try {
          result = await s.append(id, offset, c.req.raw.body, c.req.raw.signal);
        } catch (e) {
          refusedEvent(id, e);
          return refuseEarly(c, e);
        }
        if (result.image) {
          imported(result.image, "by a resumable upload");
          c.header("Upload-Offset", String(result.session.size));
          return c.json(result.image, 201);
        }
        sessionHeaders(c, result.session);
        return c.json(result.session, 200);
      },
    )
    .delete("/uploads/:id", requires("admin"), describe({ tag: "images", summary: "Cancel an upload (its bytes are removed)", parameters: idParam, ok: { 200: jsonAnswer("cancelled") }, errors: { 404: "no such upload" } }), async (c) => {
      await need().cancel(c.req.param("id"));
      return c.json({ ok: true as const });
    });
}
