// The device's event bus: every event is recorded (through a narrow recorder, the store in practice) and fanned
// out to live listeners (SSE streams, the controller).

export interface DeviceEvent {
  id?: number;
  ts: Date;
  type: string;
  objectKind?: string | null;
  objectId?: string | null;
  message: string;
  data?: Record<string, unknown> | null;
}

/** Where events are kept; returns the stored event's id (store/store.ts addEvent). */
export interface EventRecorder {
  addEvent(e: {
    ts: Date;
    type: string;
    objectKind: string | null;
    objectId: string | null;
    message: string;
    data: Record<string, unknown> | null;
  }): number;
}

type Listener = (e: DeviceEvent) => void;

export class EventBus {
  private readonly listeners = new Set<Listener>();
  constructor(private readonly recorder: EventRecorder) {}

  publish(e: Omit<DeviceEvent, "ts" | "id"> & { ts?: Date }): DeviceEvent {
    const event: DeviceEvent = { ts: e.ts ?? new Date(), ...e };
    event.id = this.recorder.addEvent({
      ts: event.ts,
      type: event.type,
      objectKind: event.objectKind ?? null,
      objectId: event.objectId ?? null,
      message: event.message,
      data: event.data ?? null,
    });
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // A broken listener must not stop the others or the publisher.
      }
    }
    return event;
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}
