// The system calls PID 1 needs and Bun does not offer, through bun:ffi on the C library:
// mount, umount2, sethostname, sync, reboot, waitpid (for orphans only, see reaper.ts), prctl.
// Loaded on first use, so importing this file costs nothing on a host.
import { dlopen, FFIType, read } from "bun:ffi";
import { constants } from "node:os";

const symbols = {
  mount: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  umount2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  sethostname: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  sync: { args: [], returns: FFIType.void },
  reboot: { args: [FFIType.i32], returns: FFIType.i32 },
  waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  prctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
  kill: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
} as const;

let lib: ReturnType<typeof dlopen<typeof symbols>> | null = null;
function libc() {
  lib ??= dlopen("libc.so.6", symbols);
  return lib.symbols;
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n as number, name]));

/** A failed system call: `code` is the errno name (ENOENT, EBUSY, …). */
export class SyscallError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${ERRNO_NAMES.get(errno) ?? `errno ${errno}`}`);
  }
  get code(): string {
    return ERRNO_NAMES.get(this.errno) ?? `E${this.errno}`;
  }
}

function errno(): number {
  return read.i32(libc().__errno_location()!, 0);
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`);
}

function check(call: string, rc: number): void {
  if (rc < 0) throw new SyscallError(call, errno());
}

export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  NOATIME: 1024,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  PRIVATE: 1 << 18,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
} as const;

export const MNT_DETACH = 2;

export function mount(source: string, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  check(`mount ${fstype ?? ""} ${source} on ${target}`, libc().mount(cstr(source), cstr(target), fstype === null ? null : cstr(fstype), flags, data === null ? null : cstr(data)));
}

export function umount(target: string, flags = 0): void {
  check(`umount ${target}`, libc().umount2(cstr(target), flags));
}

export function sethostname(name: string): void {
  const b = Buffer.from(name);
  check("sethostname", libc().sethostname(b, b.length));
}

export function sync(): void {
  libc().sync();
}

export const REBOOT = { RESTART: 0x01234567, POWER_OFF: 0x4321fedc, HALT: 0xcdef0123 } as const;

/** reboot(2): does not return when it works. */
export function reboot(cmd: number): void {
  check("reboot", libc().reboot(cmd | 0));
}

export interface WaitStatus {
  pid: number;
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: number | null;
}

const WNOHANG = 1;

/** waitpid(pid, WNOHANG): the child's status once it has exited, null while it runs; throws ECHILD when it is not ours. */
export function waitpidNoHang(pid: number): WaitStatus | null {
  const status = new Int32Array(1);
  const rc = libc().waitpid(pid, status, WNOHANG);
  if (rc < 0) throw new SyscallError(`waitpid ${pid}`, errno());
  if (rc === 0) return null;
  const s = status[0]!;
  const sig = s & 0x7f;
  return sig === 0 ? { pid: rc, code: (s >> 8) & 0xff, signal: null } : { pid: rc, code: null, signal: sig };
}

const PR_SET_CHILD_SUBREAPER = 36;

/** Orphans of this process's descendants come back to it instead of PID 1 (for tests of the reaper off PID 1). */
export function setChildSubreaper(): void {
  check("prctl PR_SET_CHILD_SUBREAPER", libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
}

/** kill(2) with a raw pid (-1: every process but PID 1 itself). */
export function killRaw(pid: number, signal: number): void {
  check(`kill ${pid}`, libc().kill(pid, signal));
}
