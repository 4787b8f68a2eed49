import { useCallback, useEffect, useRef, useState } from "preact/hooks";

/** The current time in ms, re-rendering the caller every `intervalMs` (for live clocks such as uptime). */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}

export interface LiveOptions {
  /** Poll every this many ms while the event stream is down; null: no polling. */
  pollMs?: number | null;
  /** With the stream up, poll only this often (a safety net); the default is `pollMs`. */
  safetyPollMs?: number | null;
  /** Open the stream again this long after the server closed it. */
  reconnectMs?: number;
}

export interface Live {
  /** The event stream is open. */
  live: boolean;
  /** Load now (after a command, say); resolves when that load is done. */
  refresh: () => Promise<void>;
}

/**
 * The one live-update loop of the UI. Runs `load` now, on every message of the device's event stream (SSE at
 * `eventsUrl`; any message means "something changed", its data is not read) and when the stream (re)opens, and
 * polls while the stream is down (`pollMs`) or, as a safety net, while it is up (`safetyPollMs`); not while the
 * tab is hidden, and once more when it is shown again. Loads never overlap: events during a load cost exactly
 * one more. A stream the server closed is opened again after `reconnectMs`. `load` should be stable
 * (useCallback), or the loop restarts on every render.
 */
export function useLive(eventsUrl: string, load: () => Promise<void>, options: LiveOptions = {}): Live {
  const { pollMs = null, reconnectMs = 10_000 } = options;
  const safetyPollMs = options.safetyPollMs === undefined ? pollMs : options.safetyPollMs;
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

    const refresh = (): Promise<void> => {
      if (inFlight) {
        again = true;
        return inFlight;
      }
      inFlight = (async () => {
        do {
          again = false;
          lastRefresh = Date.now();
          await load().catch(() => {});
        } while (again && !disposed);
        inFlight = null;
      })();
      return inFlight;
    };
    refreshRef.current = refresh;

    const connect = () => {
      if (disposed || typeof EventSource === "undefined") return;
      const stream = new EventSource(eventsUrl);
      source = stream;
      stream.onopen = () => {
        streamOpen = true;
        setLive(true);
        void refresh(); // catch up on whatever happened while disconnected
      };
      stream.onmessage = () => void refresh();
      stream.onerror = () => {
        streamOpen = false;
        setLive(false);
        // EventSource retries by itself unless the server refused the stream; then try again later.
        if (stream.readyState === EventSource.CLOSED) {
          stream.close();
          reconnectTimer = setTimeout(connect, reconnectMs);
        }
      };
    };

    const tick = pollMs ? Math.min(pollMs, safetyPollMs ?? pollMs) : null;
    const poll = tick
      ? setInterval(() => {
          if (document.hidden) return;
          const period = streamOpen ? safetyPollMs : pollMs;
          if (period && Date.now() - lastRefresh >= period - 250) void refresh();
        }, tick)
      : undefined;
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
  }, [eventsUrl, load, pollMs, safetyPollMs, reconnectMs]);

  const refresh = useCallback(() => refreshRef.current(), []);
  return { live, refresh };
}
