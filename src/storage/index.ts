export { download, DownloadError, hashFile, normalizeSha256 } from "./download.ts";
export type { DownloadFailure, DownloadOptions, DownloadProgress, DownloadResult } from "./download.ts";
export { ContentCache } from "./cache.ts";
export type { CacheEntry, CachePutOptions, CacheUsage, ContentCacheOptions, GcResult } from "./cache.ts";
export { pullContentTree, resolveRegistryRef } from "./registry.ts";
export type { ImagePuller, RegistryContentTree, RegistryDatastore, RegistryPullResult } from "./registry.ts";
export { VolumeStore } from "./volumes.ts";
export type { Volume, VolumeSpec } from "./volumes.ts";
