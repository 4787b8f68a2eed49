import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, createApiClient, type Health } from "./api";
import { AuthFrame } from "./components/AuthFrame";
import { AppFirewall } from "./components/FirewallEditor";
import { Layout } from "./components/Layout";
import { Controller } from "./pages/Controller";
import { Settings } from "./pages/Settings";
import { Configuration } from "./pages/Configuration";
import { Storage } from "./pages/Storage";
import { Bundles } from "./pages/Bundles";
import { Hardware } from "./pages/Hardware";
import { Updates } from "./pages/Updates";
import { Activity } from "./pages/Activity";
import { AppDetail } from "./pages/AppDetail";
import { Apps } from "./pages/Apps";
import { Dashboard } from "./pages/Dashboard";
import { Login } from "./pages/Login";
import { Networks } from "./pages/Networks";
import { NotAvailable, NotFound } from "./pages/NotAvailable";
import { Setup } from "./pages/Setup";
import { Users } from "./pages/Users";
import { Audit } from "./pages/Audit";
import { type Me, MeContext } from "./role";
import { matchRoute, navigate, safeReturnPath, useLocation } from "./router";
import { SECTIONS } from "./sections";

/** Where the app stands with the device; the page shown follows from it, and the URL is made to agree. */
type Phase =
  | { kind: "loading" }
  | { kind: "unreachable"; message: string }
  | { kind: "setup"; health: Health }
  | { kind: "login"; health: Health; notice: string | null }
  | { kind: "ready"; health: Health };

const RETRY_MS = 5_000;

export function App() {
  const onUnauthorized = useRef(() => {});
  const api = useMemo(() => createApiClient({ onUnauthorized: () => onUnauthorized.current() }), []);
  const location = useLocation();
  const [phase, setPhase] = useState<Phase>({ kind: "loading" });
  const [deviceName, setDeviceName] = useState("");
  const [me, setMe] = useState<Me | null>(null);

  // Any call that needs a session and gets 401 lands here: the session expired or was revoked.
  onUnauthorized.current = () =>
    setPhase((p) =>
      p.kind === "ready"
        ? { kind: "login", health: p.health, notice: "Your session has ended. Sign in again to continue." }
        : p,
    );

  /** Ask the device whether it needs setup, then whether this browser has a session. */
  const check = useCallback(async () => {
    try {
      const health = await api.health();
      setDeviceName(health.deviceName);
      if (health.setupRequired) {
        setPhase({ kind: "setup", health });
        return;
      }
      const authenticated = await api.session();
      setPhase(authenticated ? { kind: "ready", health } : { kind: "login", health, notice: null });
    } catch (e) {
      setPhase({ kind: "unreachable", message: e instanceof ApiError ? e.message : String(e) });
    }
  }, [api]);

  useEffect(() => {
    void check();
  }, [check]);

  useEffect(() => {
    if (phase.kind !== "unreachable") return;
    const timer = setTimeout(() => void check(), RETRY_MS);
    return () => clearTimeout(timer);
  }, [phase, check]);

  // Keep the address bar in step with the phase: deep links survive a detour through login.
  const search = location.query.toString();
  useEffect(() => {
    const here = location.path + (search ? `?${search}` : "");
    if (phase.kind === "setup" && location.path !== "/setup") {
      navigate(`/setup${search ? `?${search}` : ""}`, { replace: true });
    } else if (phase.kind === "login" && location.path !== "/login") {
      const back = location.path === "/" || location.path === "/setup" ? "" : `?next=${encodeURIComponent(here)}`;
      navigate(`/login${back}`, { replace: true });
    } else if (phase.kind === "ready") {
      if (location.path === "/login" || location.path === "/setup") {
        navigate(safeReturnPath(location.query.get("next")) ?? "/", { replace: true });
      } else if (location.path === "/dashboard") {
        navigate("/", { replace: true });
      }
    }
  }, [phase.kind, location.path, search]);

  // Who is signed in, for the controls each role may use (ui/role.tsx); read again after every sign-in.
  useEffect(() => {
    if (phase.kind !== "ready") {
      setMe(null);
      return;
    }
    api.sessionInfo().then(
      (s) => setMe({ user: s.user, role: s.role, mustEnrolTotp: s.mustEnrolTotp, totp: s.totp, requireTotpForAdmins: s.requireTotpForAdmins, power: s.power }),
      () => setMe(null),
    );
  }, [api, phase]);
  const refreshMe = useCallback(() => {
    api.sessionInfo().then((s) => setMe({ user: s.user, role: s.role, mustEnrolTotp: s.mustEnrolTotp, totp: s.totp, requireTotpForAdmins: s.requireTotpForAdmins, power: s.power }), () => undefined);
  }, [api]);

  const title = pageTitle(phase, location.path);
  useEffect(() => {
    document.title = [title, deviceName, "evebox"].filter(Boolean).join(" · ");
  }, [title, deviceName]);

  switch (phase.kind) {
    case "loading":
      return (
        <div class="auth">
          <p class="muted" role="status">
            Connecting to the device…
          </p>
        </div>
      );
    case "unreachable":
      return (
        <AuthFrame deviceName={deviceName || "evebox"} version="">
          <h1>Cannot reach the device</h1>
          <div class="form-error" role="alert">
            <p>{phase.message}</p>
          </div>
          <p class="muted">Trying again every {RETRY_MS / 1000} seconds.</p>
          <div class="form-actions">
            <button type="button" class="button primary" onClick={() => void check()}>
              Try again now
            </button>
          </div>
        </AuthFrame>
      );
    case "setup":
      return (
        <Setup
          api={api}
          health={phase.health}
          initialToken={location.query.get("token") ?? ""}
          onSetUp={() => void check()}
          onAlreadySetUp={() => void check()}
        />
      );
    case "login":
      return (
        <Login
          api={api}
          health={phase.health}
          notice={phase.notice}
          onLoggedIn={() => setPhase({ kind: "ready", health: phase.health })}
        />
      );
    case "ready": {
      if (location.path === "/login" || location.path === "/setup") return null; // about to redirect
      const logout = async () => {
        await api.logout();
        navigate("/login");
        setPhase({ kind: "login", health: phase.health, notice: "You have logged out." });
      };
      return (
        <MeContext.Provider value={me}>
          <Layout deviceName={deviceName} version={phase.health.version} path={location.path} onLogout={logout}>
            {me?.mustEnrolTotp && location.path !== "/settings" ? (
              <Settings api={api} onChanged={refreshMe} />
            ) : (
              <Page path={location.path} api={api} onDeviceName={setDeviceName} onMeChanged={refreshMe} />
            )}
          </Layout>
        </MeContext.Provider>
      );
    }
  }
}

function Page({
  path,
  api,
  onDeviceName,
  onMeChanged,
}: {
  path: string;
  api: ReturnType<typeof createApiClient>;
  onDeviceName: (name: string) => void;
  onMeChanged: () => void;
}) {
  if (path === "/" || path === "/dashboard") return <Dashboard api={api} onDeviceName={onDeviceName} />;
  if (path === "/controller") return <Controller api={api} />;
  if (path === "/activity") return <Activity api={api} />;
  if (path === "/settings") return <Settings api={api} onChanged={onMeChanged} />;
  if (path === "/users") return <Users api={api} />;
  if (path === "/audit") return <Audit api={api} />;
  if (path === "/updates") return <Updates api={api} />;
  if (path === "/storage") return <Storage api={api} />;
  if (path === "/bundles") return <Bundles api={api} />;
  if (path === "/hardware") return <Hardware api={api} />;
  if (path === "/config") return <Configuration api={api} />;
  if (path === "/apps") return <Apps api={api} />;
  if (path === "/networks") return <Networks api={api} />;
  const firewall = matchRoute("/apps/:uuid/firewall", path);
  if (firewall) return <AppFirewall key={firewall.uuid} api={api} uuid={firewall.uuid!} />;
  const app = matchRoute("/apps/:uuid", path);
  if (app) return <AppDetail key={app.uuid} api={api} uuid={app.uuid!} />;
  const section = SECTIONS.find((s) => matchRoute(s.href, path));
  if (section) return <NotAvailable section={section} />;
  return <NotFound path={path} />;
}

function pageTitle(phase: Phase, path: string): string {
  switch (phase.kind) {
    case "loading":
      return "";
    case "unreachable":
      return "Cannot reach the device";
    case "setup":
      return "Set up";
    case "login":
      return "Sign in";
    case "ready":
      if (path === "/" || path === "/dashboard") return "Dashboard";
      if (matchRoute("/apps/:uuid/firewall", path)) return "App firewall";
      if (matchRoute("/apps/:uuid", path)) return "App";
      return SECTIONS.find((s) => matchRoute(s.href, path))?.label ?? "Page not found";
  }
}
