import { expect, test } from "bun:test";
import type { ContainerRuntime } from "../runtime/containers/index.ts";
import { ContainerWorkload } from "./containers.ts";
import type { WorkloadHost } from "./workload.ts";

// As init, evebox starts before dockerd answers: the first try to watch the engine's events fails. It used to be
// the only try, so no engine event (an exit, an OOM) ever asked for a pass again until evebox restarted.
test("a watch that cannot open yet is tried again until it opens, then a pass catches up; close stops the tries", async () => {
  let tries = 0;
  let unsubscribed = 0;
  let onEvent: (() => void) | null = null;
  const runtime = {
    watch: async (cb: () => void) => {
      tries++;
      if (tries < 3) throw new Error("watch container events failed: Docker engine not reachable at /var/run/docker.sock (ENOENT)");
      onEvent = cb;
      return () => unsubscribed++;
    },
  } as unknown as ContainerRuntime;
  const errors: string[] = [];
  let changes = 0;
  const host = { records: {}, onChange: () => changes++, onError: (e: Error) => errors.push(e.message) } as unknown as WorkloadHost;
  const w = new ContainerWorkload({ runtime, watchRetryMs: 5 });
  await w.start(host);
  expect(errors).toEqual([expect.stringContaining("Docker engine not reachable")]); // said once, not at every try
  const until = Date.now() + 2000;
  while (!onEvent && Date.now() < until) await Bun.sleep(5);
  expect(tries).toBe(3);
  expect(changes).toBe(1); // the catch-up pass
  onEvent!();
  expect(changes).toBe(2);
  w.close();
  expect(unsubscribed).toBe(1);

  // Closed while the engine is still down: no more tries.
  tries = -100;
  const w2 = new ContainerWorkload({ runtime, watchRetryMs: 5 });
  await w2.start(host);
  w2.close();
  const at = tries;
  await Bun.sleep(40);
  expect(tries).toBe(at);
});
