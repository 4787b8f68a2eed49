// The console's top-level sections, in navigation order. A section without a page yet shows the generic
// "not available yet" page, so the navigation is already the final one and deep links never dead-end.

export interface Section {
  href: string;
  label: string;
  /** What the page will be for, shown on its placeholder. */
  purpose: string;
  built: boolean;
  /** The least role that sees it in the navigation (everyone when absent); the server checks each call anyway. */
  role?: "viewer" | "operator" | "admin";
}

export const SECTIONS: readonly Section[] = [
  { href: "/", label: "Dashboard", purpose: "Device status at a glance.", built: true },
  {
    href: "/activity",
    label: "Activity",
    purpose: "What the device did and is doing: configuration versions, downloads, app states, updates.",
    built: true,
  },
  {
    href: "/apps",
    label: "Apps",
    purpose: "Deploy, start, stop and inspect the device's applications (containers and virtual machines).",
    built: true,
  },
  {
    href: "/networks",
    label: "Networks",
    purpose: "Network instances, port maps and firewall rules of the applications.",
    built: true,
  },
  {
    href: "/hardware",
    label: "Hardware",
    purpose: "The device's I/O (serial ports, USB, PCI, network, CAN): what each is, which app holds it, why one cannot be given.",
    built: true,
  },
  { href: "/storage", label: "Storage", purpose: "Volumes and content trees (images) on this device.", built: true },
  { href: "/bundles", label: "Bundles", purpose: "App bundles: import a whole stack (apps, images, networks) from one file, upgrade it, remove it.", built: true },
  {
    href: "/config",
    label: "Configuration",
    purpose: "The device's configuration document: download, upload, the history of versions and roll back.",
    built: true,
  },
  {
    href: "/controller",
    label: "Controller",
    purpose: "Connect the device to an EVE controller, or keep it in local mode.",
    built: true,
  },
  { href: "/updates", label: "Updates", purpose: "Base-OS updates, the test window and fallback.", built: true },
  { href: "/settings", label: "Settings", purpose: "The device's settings (config items); your password, second factor and API tokens; the device's power.", built: true },
  { href: "/users", label: "Users", purpose: "Who may use this console, with which role; a second factor for admins.", built: true, role: "admin" },
  { href: "/audit", label: "Audit", purpose: "Who did what, when, from where: every change and sign-in.", built: true },
];
