import { useEffect, useState } from "preact/hooks";

/** The current time in ms, re-rendering the caller every `intervalMs` (for live clocks such as uptime). */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}

/**
 * Runs `load` now, on every device event (the SSE stream at `eventsUrl`: any event means "something changed"),
 * and every `pollMs` when given; a load still running is not started again. `load` should be stable
 * (useCallback), or the stream reconnects on every render.
 */
export function useLiveLoad(eventsUrl: string, load: () => Promise<void>, pollMs: number | null = null): void {
  useEffect(() => {
    let running = false;
    const run = () => {
      if (running) return;
      running = true;
      void load().finally(() => {
        running = false;
      });
    };
    run();
    const timer = pollMs ? setInterval(run, pollMs) : undefined;
    const events = typeof EventSource !== "undefined" ? new EventSource(eventsUrl) : null;
    if (events) events.onmessage = run;
    return () => {
      clearInterval(timer);
      events?.close();
    };
  }, [eventsUrl, load, pollMs]);
}
