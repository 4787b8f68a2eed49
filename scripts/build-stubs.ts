// Bundler plugin for the compiled binary: dockerode pulls in transports evebox never uses — SSH
// (`ssh2`, for ssh:// engine URLs) and gRPC (`@grpc/*`, for BuildKit sessions). Evaluating them costs
// start-up time and memory on every device, so the binary carries stubs that fail clearly if reached.
import type { BunPlugin } from "bun";

const STUBS: Record<string, string> = {
  ssh2: `class Client { constructor() { throw new Error("evebox does not support ssh:// Docker engine URLs (use the unix socket or tcp)"); } }
module.exports = { Client };`,
  "@grpc/grpc-js": `module.exports = new Proxy({}, { get() { throw new Error("evebox does not carry gRPC (Docker BuildKit sessions are not used)"); } });`,
  "@grpc/proto-loader": `module.exports = new Proxy({}, { get() { throw new Error("evebox does not carry gRPC (Docker BuildKit sessions are not used)"); } });`,
};

export const unusedTransportStubs: BunPlugin = {
  name: "evebox-unused-transport-stubs",
  setup(build) {
    build.onResolve({ filter: /^(ssh2|@grpc\/grpc-js|@grpc\/proto-loader)$/ }, (args) => ({ path: args.path, namespace: "evebox-stub" }));
    build.onLoad({ filter: /.*/, namespace: "evebox-stub" }, (args) => ({ contents: STUBS[args.path]!, loader: "js" }));
  },
};
