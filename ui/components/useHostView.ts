import { useCallback, useEffect, useState } from "preact/hooks";
import type { ApiClient } from "../api";
import type { HostView } from "../device-check";

/** What the device reported of itself for validation (GET /api/v1/host), loaded on opening; `reload` before a form. */
export function useHostView(api: Pick<ApiClient, "host">) {
  const [view, setView] = useState<HostView | null>(null);
  const reload = useCallback(async () => {
    try {
      setView(await api.host());
    } catch {
      // Without it the forms check what they can; the device checks the rest at the plan.
    }
  }, [api]);
  useEffect(() => void reload(), [reload]);
  return { view, reload };
}
