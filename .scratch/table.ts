import { SETTINGS, WITHOUT_EFFECT } from "../src/config/settings.ts";
const range = (k: any) => k.type === "seconds" ? `${k.min}..${k.max} s` : k.type === "integer" ? `${k.min}..${k.max}` : k.type === "boolean" ? "true/false" : k.type === "enabled" ? "enabled/disabled" : k.type === "tristate" ? "enabled/disabled/none" : "trace..panic";
console.log("| item | default | range | on evebox |\n|---|---|---|---|");
for (const s of SETTINGS) console.log(`| \`${s.key}\` | ${s.default === null ? "none" : s.kind.type === "enabled" ? (s.default ? "enabled" : "disabled") : s.default} | ${range(s.kind)} | ${s.effect} |`);
console.log(`\nAccepted without effect (listed as such, never an error): ${Object.keys(WITHOUT_EFFECT).map((k) => `\`${k}\``).join(", ")}.`);
