export type VmErrorKind =
  /** The spec was refused before anything started (every problem is listed). */
  | "invalid-spec"
  /** More memory or vCPUs than the host has. */
  | "insufficient-resources"
  /** prepareDisk: the file is not a disk image of the declared format. */
  | "not-a-disk"
  | "disk"
  /** QEMU exited or failed while starting. */
  | "start-failed"
  /** The guest did not show its ready pattern in time (it was killed). */
  | "boot-timeout"
  | "not-running"
  | "qmp"
  | "console"
  | "cloud-init";

/**
 * An error about one VM app: which app, what failed, and what QEMU said (`stderrTail`). The message holds all of
 * it, so logging `err.message` alone is enough for a user to act.
 */
export class VmError extends Error {
  override readonly name = "VmError";
  constructor(
    readonly kind: VmErrorKind,
    readonly app: { uuid: string; name?: string } | null,
    readonly detail: string,
    readonly stderrTail = "",
  ) {
    super(
      `${app ? `app ${app.name ? `"${app.name}" ` : ""}(${app.uuid}): ` : ""}${detail}` +
        (stderrTail.trim() ? `\nQEMU said:\n${stderrTail.trim()}` : ""),
    );
  }
}
