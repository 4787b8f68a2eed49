import type { ComponentChildren } from "preact";

/** The frame of the pages shown before signing in (setup, login): one centred card naming the device. */
export function AuthFrame({
  deviceName,
  version,
  children,
}: {
  deviceName: string;
  version: string;
  children: ComponentChildren;
}) {
  return (
    <div class="auth">
      <main class="auth-card" id="main">
        <p class="auth-device">
          <span class="brand">evebox</span>
          <span class="auth-device-name">{deviceName}</span>
          {version && <span class="muted">version {version}</span>}
        </p>
        {children}
      </main>
    </div>
  );
}
