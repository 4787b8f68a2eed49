// Display formatting shared by pages. Pure functions, unit-tested in format.test.ts.

/** Uptime as a compact human duration that still visibly ticks: "42 s", "12 min 5 s", "3 days 4 h 12 min 5 s". */
export function formatUptime(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(Number.isFinite(totalSeconds) ? totalSeconds : 0));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = s % 60;
  const parts: string[] = [];
  if (days > 0) parts.push(`${days} ${days === 1 ? "day" : "days"}`);
  if (days > 0 || hours > 0) parts.push(`${hours} h`);
  if (days > 0 || hours > 0 || minutes > 0) parts.push(`${minutes} min`);
  parts.push(`${seconds} s`);
  return parts.join(" ");
}

/** A wait in words, for messages: "1 second", "45 seconds", "2 minutes", "1 minute 30 seconds". */
export function formatWait(totalSeconds: number): string {
  const s = Math.max(1, Math.ceil(totalSeconds));
  const minutes = Math.floor(s / 60);
  const seconds = s % 60;
  const words: string[] = [];
  if (minutes > 0) words.push(`${minutes} ${minutes === 1 ? "minute" : "minutes"}`);
  if (seconds > 0) words.push(`${seconds} ${seconds === 1 ? "second" : "seconds"}`);
  return words.join(" ");
}

/** A timestamp in the browser's locale, or the raw text when it does not parse. */
export function formatDateTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** The first characters of a hash, enough to compare by eye; the full value goes in a title. */
export function shortHash(hash: string, length = 12): string {
  const bare = hash.replace(/^sha256:/, "");
  return bare.length > length ? bare.slice(0, length) : bare;
}

/** A byte count in binary units: "512 B", "1.5 KiB", "12 MiB", "3.4 GiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const shown = i === 0 ? String(Math.round(v)) : v < 10 ? v.toFixed(1) : String(Math.round(v));
  return `${n < 0 ? "-" : ""}${shown} ${units[i]}`;
}

/** A rate in bytes per second: "1.5 KiB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** The Local Operator Console's state in one line (Controller page): whether it is the config's source, or its fault. */
export function locSummary(loc: { url: string | null; configFromLoc: boolean; lastContact: string | null; lastError: { message: string } | null } | undefined, connectionOnline: boolean): string | null {
  if (!loc?.url) return null;
  if (loc.configFromLoc && !connectionOnline) return `the running config came from it (the controller is unreachable)`;
  if (loc.lastError) return `not usable: ${loc.lastError.message}`;
  if (!loc.lastContact) return connectionOnline ? "standing by: asked only when the controller cannot be reached" : "not reached yet";
  return connectionOnline ? "standing by: the controller answers" : "reachable, nothing new";
}
