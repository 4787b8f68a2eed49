// The device status, kept live by the one live-update loop (useLive in ../hooks.ts): loaded once, refreshed on
// every message of the /events stream, polled every 5 s while the stream is down and every 15 s (the dashboard:
// 30 s) as a safety net while it is up. Shared by the dashboard and the Apps pages.
import { useCallback, useState } from "preact/hooks";
import { ApiError, type ApiClient, type DeviceStatus } from "../api";
import { useLive } from "../hooks";

const POLL_MS = 5_000;
const SAFETY_POLL_MS = 15_000;

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

export function useLiveStatus(api: ApiClient, options: { safetyPollMs?: number } = {}): LiveStatus {
  const [status, setStatus] = useState<DeviceStatus | null>(null);
  const [fetchedAt, setFetchedAt] = useState(0);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const next = await api.status();
      setStatus(next);
      setFetchedAt(Date.now());
      setError(null);
    } catch (e) {
      // A 401 has already sent the app to sign in; anything else is shown, keeping the last known state.
      if (!(e instanceof ApiError && e.status === 401)) setError(e instanceof Error ? e.message : String(e));
    }
  }, [api]);

  const { live, refresh } = useLive(api.eventsUrl, load, { pollMs: POLL_MS, safetyPollMs: options.safetyPollMs ?? SAFETY_POLL_MS });
  return { status, fetchedAt, error, live, refresh };
}
