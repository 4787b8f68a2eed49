// The device status, kept live: loaded once, refreshed on every message of the /events stream (any message
// means "something changed"), and polled every 5 s while the stream is down (every 15 s as a safety net while it
// is up). Refreshes never overlap. The same scheme as the dashboard's, shared by the Apps pages.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, type ApiClient, type DeviceStatus } from "../api";

const POLL_MS = 5_000;
const SAFETY_POLL_MS = 15_000;
const RECONNECT_MS = 10_000;

export interface LiveStatus {
  status: DeviceStatus | null;
  /** When `status` was fetched (ms). */
  fetchedAt: number;
  error: string | null;
  /** The event stream is open. */
  live: boolean;
  /** Fetch now (after a command, say); resolves when done. */
  refresh: () => Promise<void>;
}

export function useLiveStatus(api: ApiClient): LiveStatus {
  const [status, setStatus] = useState<DeviceStatus | null>(null);
  const [fetchedAt, setFetchedAt] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  const refreshRef = useRef<() => Promise<void>>(async () => {});

  useEffect(() => {
    let disposed = false;
    let inFlight: Promise<void> | null = null;
    let again = false;
    let streamOpen = false;
    let lastRefresh = 0;
    let source: EventSource | null = null;
    let reconnectTimer: ReturnType<typeof setTimeout> | undefined;

    const once = async (): Promise<void> => {
      lastRefresh = Date.now();
      try {
        const next = await api.status();
        if (disposed) return;
        setStatus(next);
        setFetchedAt(Date.now());
        setError(null);
      } catch (e) {
        // A 401 has already sent the app to sign in; anything else is shown, keeping the last known state.
        if (!disposed && !(e instanceof ApiError && e.status === 401)) setError(e instanceof Error ? e.message : String(e));
      }
    };

    const refresh = (): Promise<void> => {
      if (inFlight) {
        again = true;
        return inFlight;
      }
      inFlight = (async () => {
        do {
          again = false;
          await once();
        } while (again && !disposed);
        inFlight = null;
      })();
      return inFlight;
    };
    refreshRef.current = refresh;

    const connect = () => {
      if (disposed || typeof EventSource === "undefined") return;
      const stream = new EventSource(api.eventsUrl);
      source = stream;
      stream.onopen = () => {
        streamOpen = true;
        setLive(true);
        void refresh();
      };
      stream.onmessage = () => void refresh();
      stream.onerror = () => {
        streamOpen = false;
        setLive(false);
        if (stream.readyState === EventSource.CLOSED) {
          stream.close();
          reconnectTimer = setTimeout(connect, RECONNECT_MS);
        }
      };
    };

    const poll = setInterval(() => {
      if (document.hidden) return;
      const period = streamOpen ? SAFETY_POLL_MS : POLL_MS;
      if (Date.now() - lastRefresh >= period - 250) void refresh();
    }, POLL_MS);
    const onVisible = () => {
      if (!document.hidden) void refresh();
    };
    document.addEventListener("visibilitychange", onVisible);

    void refresh();
    connect();
    return () => {
      disposed = true;
      clearInterval(poll);
      clearTimeout(reconnectTimer);
      document.removeEventListener("visibilitychange", onVisible);
      source?.close();
    };
  }, [api]);

  const refresh = useCallback(() => refreshRef.current(), []);
  return { status, fetchedAt, error, live, refresh };
}
