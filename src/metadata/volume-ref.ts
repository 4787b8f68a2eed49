// An encrypted volume artifact's plaintext (EVE's ExternalOpaqueBinaryBlob, proto/config/patch_envelope.proto), read
// into what the config's cipher part names a volume artifact by. Used where such a block is opened: the reconciler
// (to fetch the volume's content tree) and the metadata server (to serve its file).
import type { VolumeArtifactRef } from "../config/cipher.ts";
import { decodeMessage, type ExternalOpaqueBinaryBlob } from "../proto/index.ts";

export function decodeVolumeRef(clear: Uint8Array): VolumeArtifactRef {
  let b: ExternalOpaqueBinaryBlob;
  try {
    b = decodeMessage<ExternalOpaqueBinaryBlob>("org.lfedge.eve.config.ExternalOpaqueBinaryBlob", clear);
  } catch (e) {
    throw new Error(`the decrypted data is not an ExternalOpaqueBinaryBlob: ${(e as Error).message}`);
  }
  return { imageName: String(b.imageName ?? ""), fileNameToUse: String(b.fileNameToUse ?? ""), blobMetaData: String(b.blobMetaData ?? ""), volumeId: String(b.imageId ?? "").toLowerCase() };
}
