// nftables transactions through libnftables in-process (bun:ffi), when the library is there: the same
// parser and the same atomic transaction as `nft -f`, without starting a process and rebuilding nft's cache
// for every change (that start-up is most of the cost of a small change). Falls back to the nft command.
import { CString, dlopen, FFIType, ptr } from "bun:ffi";
import { sh } from "../sys.ts";

export interface NftRunner {
  /** Runs one transaction (nft -f syntax); throws with nft's error text when it is refused. */
  run(text: string): Promise<void>;
  /** A listing command's output, or null when nft refused it (no such table …); in-process only. */
  list?(command: string): string | null;
  readonly kind: "libnftables" | "nft";
}

export class NftCommand implements NftRunner {
  readonly kind = "nft" as const;
  constructor(private readonly argv: string[] = ["nft"]) {}
  async run(text: string): Promise<void> {
    await sh([...this.argv, "-f", "-"], { stdin: text, timeoutMs: 60_000 });
  }
}

type Lib = ReturnType<typeof open>;

function open() {
  return dlopen("libnftables.so.1", {
    nft_ctx_new: { args: [FFIType.u32], returns: FFIType.ptr },
    nft_ctx_free: { args: [FFIType.ptr], returns: FFIType.void },
    nft_ctx_buffer_output: { args: [FFIType.ptr], returns: FFIType.i32 },
    nft_ctx_buffer_error: { args: [FFIType.ptr], returns: FFIType.i32 },
    nft_ctx_get_error_buffer: { args: [FFIType.ptr], returns: FFIType.ptr },
    nft_ctx_get_output_buffer: { args: [FFIType.ptr], returns: FFIType.ptr },
    nft_run_cmd_from_buffer: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  });
}

export class LibNftables implements NftRunner {
  readonly kind = "libnftables" as const;
  private constructor(
    private readonly lib: Lib,
    private readonly ctx: NonNullable<ReturnType<Lib["symbols"]["nft_ctx_new"]>>,
  ) {}

  /** null when the library cannot be loaded (then the nft command is used). */
  static tryOpen(): LibNftables | null {
    try {
      const lib = open();
      const ctx = lib.symbols.nft_ctx_new(0);
      if (!ctx) return null;
      lib.symbols.nft_ctx_buffer_output(ctx);
      lib.symbols.nft_ctx_buffer_error(ctx);
      return new LibNftables(lib, ctx);
    } catch {
      return null;
    }
  }

  list(command: string): string | null {
    // Reading the buffer rewinds it; what the command writes then starts at its beginning.
    this.lib.symbols.nft_ctx_get_output_buffer(this.ctx);
    const buf = Buffer.from(`${command}\0`);
    if (this.lib.symbols.nft_run_cmd_from_buffer(this.ctx, ptr(buf)) !== 0) {
      this.lib.symbols.nft_ctx_get_error_buffer(this.ctx);
      return null;
    }
    const p = this.lib.symbols.nft_ctx_get_output_buffer(this.ctx);
    return p ? new CString(p).toString() : "";
  }

  async run(text: string): Promise<void> {
    const buf = Buffer.from(`${text}\0`);
    const rc = this.lib.symbols.nft_run_cmd_from_buffer(this.ctx, ptr(buf));
    if (rc !== 0) {
      const p = this.lib.symbols.nft_ctx_get_error_buffer(this.ctx);
      const err = p ? new CString(p).toString() : "";
      throw new Error(`nft refused the transaction (nothing of it was applied): ${err.trim().split("\n").slice(0, 6).join("; ") || `error ${rc}`}`);
    }
  }
}

/** libnftables when available (and not turned off: `"cli"`, EVEBOX_NFT=cli), else the nft command. */
export function defaultRunner(prefer: "libnftables" | "cli" = "libnftables"): NftRunner {
  if (prefer !== "cli") {
    const lib = LibNftables.tryOpen();
    if (lib) return lib;
  }
  return new NftCommand();
}
