import { describe, expect, test } from "bun:test";
import { EventBus } from "../model/events.ts";
import { Store } from "../store/store.ts";
import { activityNow, NOT_ACTIVITY, toActivity } from "./activity.ts";

function journal() {
  const store = Store.open(":memory:");
  return { store, events: new EventBus(store), entries: () => store.eventsExcept(NOT_ACTIVITY, 100).map(toActivity) };
}

describe("activity", () => {
  test("a config version names who applied it and links to the version; a refused one says why", () => {
    const { events, entries, store } = journal();
    events.publish({ type: "config.accepted", message: "config version 3 accepted", data: { version: 3, source: "local", author: "admin", changes: 2 } });
    events.publish({ type: "config.accepted", message: "config version 4 accepted", data: { version: 4, source: "controller", author: "controller ctrl.example" } });
    events.publish({ type: "config.rejected", message: "refused", data: { version: 5, author: "token:ci", problems: [{ path: "apps[0].displayname", message: "empty" }, { path: "a", message: "b" }, { path: "c", message: "d" }, { path: "e", message: "f" }] } });
    const [rejected, fromController, local] = entries();
    expect(local).toMatchObject({ area: "config", by: "admin", object: { kind: "config", id: "3" }, failed: false, reason: null });
    expect(fromController!.by).toBe("controller ctrl.example");
    expect(rejected).toMatchObject({ by: "token:ci", failed: true, reason: "apps[0].displayname: empty; a: b; c: d (and 1 more)" });
    store.close();
  });

  test("app states and commands: who asked, a state with an error failed with its reason, a failed step is its object's", () => {
    const { events, entries, store } = journal();
    events.publish({ type: "app.command", objectKind: "app", objectId: "a1", message: "restart requested", data: { command: "restart", by: "token:ops" } });
    events.publish({ type: "app.state", objectKind: "app", objectId: "a1", message: "app web: RUNNING", data: { state: "RUNNING", error: null, previous: "BOOTING" } });
    events.publish({ type: "app.state", objectKind: "app", objectId: "a1", message: "app web: BROKEN", data: { state: "BROKEN", error: "exited with 1", previous: "RUNNING" } });
    events.publish({ type: "reconcile.step-failed", objectKind: "contentTree", objectId: "c1", message: "fetch x: 404", data: { step: "fetch x", reason: "the datastore answered 404" } });
    const [step, broken, running, command] = entries();
    expect(command).toMatchObject({ area: "app", by: "token:ops", object: { kind: "app", id: "a1" }, failed: false });
    expect(running).toMatchObject({ by: null, failed: false });
    expect(broken).toMatchObject({ failed: true, reason: "exited with 1" });
    expect(step).toMatchObject({ area: "download", object: { kind: "contentTree", id: "c1" }, failed: true, reason: "the datastore answered 404" });
    store.close();
  });

  test("sign-ins and progress ticks are not activity; pages go by id", () => {
    const { events, store } = journal();
    events.publish({ type: "auth.login-failed", message: "failed login" });
    events.publish({ type: "baseos.progress", message: "42 %" });
    const a = events.publish({ type: "device.started", message: "started" });
    const b = events.publish({ type: "baseos.committed", message: "committed" });
    const all = store.eventsExcept(NOT_ACTIVITY, 100).map(toActivity);
    expect(all.map((e) => e.type)).toEqual(["baseos.committed", "device.started"]);
    expect(all[0]!.area).toBe("update");
    expect(store.eventsExcept(NOT_ACTIVITY, 100, b.id).map((e) => e.id)).toEqual([a.id!]);
    store.close();
  });

  test("now: downloads with their bytes and speed, apps between states", () => {
    const now = activityNow({
      contentTrees: [
        { uuid: "c1", name: "img", state: "DOWNLOADING", error: null, progress: 40, bytesDone: 400, bytesTotal: 1000, bytesPerSecond: 200 },
        { uuid: "c2", name: "done", state: "LOADED", error: null, progress: 100 },
        { uuid: "c3", name: "bad", state: "DOWNLOADING", error: "404", progress: 0 },
      ],
      apps: [
        { uuid: "a1", name: "web", state: "BOOTING", error: null },
        { uuid: "a2", name: "db", state: "RUNNING", error: null },
        // Stuck with an error is not under way: its failure is in the log.
        { uuid: "a3", name: "stuck", state: "DOWNLOADING", error: "404" },
      ],
    });
    expect(now).toEqual({
      downloads: [{ uuid: "c1", name: "img", state: "DOWNLOADING", progress: 40, bytesDone: 400, bytesTotal: 1000, bytesPerSecond: 200 }],
      apps: [{ uuid: "a1", name: "web", state: "BOOTING" }],
    });
  });
});
