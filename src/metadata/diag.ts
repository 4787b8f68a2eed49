// What `GET /eve/v1/diag` answers: EVE's diag agent writes a summary to the console (the controller link, the
// device, each app and download with its errors) and msrv serves that text; evebox's summary is made the same way
// from what evebox observed of each object (the store's observed states). Pure: the rows are given.

export interface DiagObject {
  id: string;
  name: string | null;
  state: string;
  error: string | null;
}

export interface DiagFacts {
  device: { uuid: string | null; name: string };
  /** Observed objects by kind (app, contentTree, volume, networkInstance). */
  objects(kind: "app" | "contentTree" | "volume" | "networkInstance"): DiagObject[];
  now?: Date;
}

const KINDS = [
  ["app", "app instances"],
  ["contentTree", "content trees (downloads)"],
  ["volume", "volumes"],
  ["networkInstance", "network instances"],
] as const;

export function diagText(f: DiagFacts): string {
  const lines = [
    `evebox diag at ${(f.now ?? new Date()).toISOString()}`,
    `device ${f.device.name || "(no name)"}: ${f.device.uuid ? `managed by a controller, device UUID ${f.device.uuid}` : "local mode (no controller)"}`,
  ];
  for (const [kind, title] of KINDS) {
    const rows = f.objects(kind);
    const errors = rows.filter((r) => r.error).length;
    lines.push(`${title}: ${rows.length}${errors ? `, ${errors} in error` : ""}`);
    for (const r of rows) lines.push(`  ${r.name || r.id} (${r.id}): ${r.state}${r.error ? ` — ERROR: ${oneLine(r.error)}` : ""}`);
  }
  return `${lines.join("\n")}\n`;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, " ").slice(0, 1024);
}
