// Entry of the evebox console bundle (built by build.ts, embedded in the binary).
import { render } from "preact";
import { App } from "./App";
import "./styles.css";

function start(): void {
  const root = document.getElementById("app");
  if (root) render(<App />, root);
}

// Works whether the build puts the script at the end of <body>, or in <head> without defer.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
