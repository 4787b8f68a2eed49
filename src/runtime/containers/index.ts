export { ContainerRuntime, DEFAULT_DOCKER_SOCKET, engineMessage } from "./runtime.ts";
export type { ContainerRuntimeOptions, PullOptions } from "./runtime.ts";
export { containerName, sanitizeName, specGeneration } from "./naming.ts";
export type * from "./types.ts";
