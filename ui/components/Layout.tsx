import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { isActivePath, Link } from "../router";
import { mayUse, useMe } from "../role";
import { SECTIONS } from "../sections";

export interface LayoutProps {
  deviceName: string;
  version: string;
  path: string;
  onLogout: () => Promise<void>;
  children: ComponentChildren;
}

/** The frame of every signed-in page: header with the device name, section navigation, log-out button. */
export function Layout({ deviceName, version, path, onLogout, children }: LayoutProps) {
  const [menuOpen, setMenuOpen] = useState(false);
  const [loggingOut, setLoggingOut] = useState(false);
  const [logoutError, setLogoutError] = useState<string | null>(null);
  const firstRender = useRef(true);
  const me = useMe();

  // After an in-app navigation, close the menu and move focus to the new page's heading, so keyboard and
  // screen-reader users land on the content rather than staying on the link they used.
  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    setMenuOpen(false);
    document.querySelector<HTMLElement>("#main h1")?.focus();
  }, [path]);

  const logout = async () => {
    setLoggingOut(true);
    setLogoutError(null);
    try {
      await onLogout();
    } catch (e) {
      setLogoutError(e instanceof ApiError ? e.message : "Logging out failed.");
      setLoggingOut(false);
    }
  };

  return (
    <div class="shell">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <button
          type="button"
          class="button ghost nav-toggle"
          aria-expanded={menuOpen ? "true" : "false"}
          aria-controls="nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <span class="brand" aria-hidden="true">
          evebox
        </span>
        <span class="topbar-device" title={`${deviceName} · evebox ${version}`}>
          <span class="visually-hidden">Device: </span>
          <span id="header-device-name">{deviceName}</span>
        </span>
        {me && (
          <span class="topbar-user" id="header-user" title={`signed in as ${me.user ?? "the local socket"}, ${me.role}`}>
            {me.user} <span class="badge" id="header-role">{me.role}</span>
          </span>
        )}
        <button type="button" id="logout" class="button secondary" onClick={logout} disabled={loggingOut}>
          {loggingOut ? "Logging out…" : "Log out"}
        </button>
      </header>
      <div class="body">
        <nav id="nav" class={menuOpen ? "sidenav open" : "sidenav"} aria-label="Sections">
          <ul>
            {SECTIONS.filter((section) => !section.role || mayUse(me, section.role)).map((section) => {
              const active = isActivePath(section.href, path);
              return (
                <li key={section.href}>
                  <Link href={section.href} aria-current={active ? "page" : undefined}>
                    {section.label}
                  </Link>
                </li>
              );
            })}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          {logoutError && (
            <div class="banner banner-error" role="alert">
              Could not log out: {logoutError}
            </div>
          )}
          {children}
        </main>
      </div>
    </div>
  );
}
