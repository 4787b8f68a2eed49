import { expect, test } from "bun:test";
import { PullProgressAggregator } from "./progress.ts";

test("pull progress aggregates bytes over layers", () => {
  const agg = new PullProgressAggregator();
  agg.apply({ status: "Pulling from evebox/app", id: "1" });
  agg.apply({ status: "Pulling fs layer", id: "a" });
  agg.apply({ status: "Already exists", id: "b" });
  agg.apply({ status: "Downloading", id: "a", progressDetail: { current: 100, total: 1000 } });
  let p = agg.apply({ status: "Downloading", id: "a", progressDetail: { current: 600, total: 1000 } });
  expect(p).toMatchObject({ bytesDone: 600, bytesTotal: 1000, layersDone: 1, layersTotal: 2 });
  agg.apply({ status: "Download complete", id: "a" });
  p = agg.apply({ status: "Pull complete", id: "a" });
  expect(p).toMatchObject({ bytesDone: 1000, bytesTotal: 1000, layersDone: 2, layersTotal: 2, status: "Pull complete" });
});
