import type { PullProgress } from "./types.ts";

// The engine reports a pull as JSON lines per layer id: "Pulling fs layer", "Downloading" with
// progressDetail {current, total}, "Download complete", "Extracting", "Pull complete", or
// "Already exists". This folds them into one figure for the whole image.

export interface EngineProgressEvent {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

interface LayerProgress {
  done: number;
  total: number;
  complete: boolean;
}

const LAYER_STATUSES = new Set([
  "Pulling fs layer",
  "Waiting",
  "Downloading",
  "Verifying Checksum",
  "Download complete",
  "Extracting",
  "Pull complete",
  "Already exists",
]);

export class PullProgressAggregator {
  private readonly layers = new Map<string, LayerProgress>();
  private status = "";

  /** Applies one engine event; returns the new aggregate. */
  apply(event: EngineProgressEvent): PullProgress {
    if (event.status) this.status = event.status;
    const id = event.id;
    if (id && event.status && LAYER_STATUSES.has(event.status)) {
      const layer = this.layers.get(id) ?? { done: 0, total: 0, complete: false };
      const detail = event.progressDetail ?? {};
      switch (event.status) {
        case "Downloading":
          if (typeof detail.total === "number" && detail.total > 0) layer.total = detail.total;
          if (typeof detail.current === "number") layer.done = detail.current;
          break;
        case "Download complete":
        case "Extracting":
        case "Pull complete":
          layer.done = layer.total;
          layer.complete = event.status === "Pull complete" || layer.complete;
          break;
        case "Already exists":
          layer.complete = true;
          break;
      }
      this.layers.set(id, layer);
    }
    return this.snapshot();
  }

  snapshot(): PullProgress {
    let bytesDone = 0;
    let bytesTotal = 0;
    let layersDone = 0;
    for (const layer of this.layers.values()) {
      bytesDone += Math.min(layer.done, layer.total || layer.done);
      bytesTotal += layer.total;
      if (layer.complete) layersDone++;
    }
    return { bytesDone, bytesTotal, layersDone, layersTotal: this.layers.size, status: this.status };
  }
}
