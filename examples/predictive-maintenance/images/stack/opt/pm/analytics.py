"""The analytics: per burst of the sensor (pm/raw), its RMS and kurtosis, the health score against the learned
baseline, the remaining-useful-life estimate and the alert (pmlib.py has the method); published per burst
(pm/features) and as the state the dashboard shows (pm/state, retained).

Everything it knows is kept in its volume (DATA_DIR, default /data): state.json (baseline, counters, alert,
machine clock) rewritten atomically per burst, history.jsonl appended per burst, so a restart, an upgrade of the
app or of the device continues where it was. Purging the app's volume (after the bearing was replaced) makes it
learn a new baseline.
"""

import json
import os
import threading

from pmlib import (ALERT_HEALTH, ALERT_WINDOWS, BASELINE_WINDOWS, KURT_LIMIT, RMS_LIMIT, RUL_WINDOWS, SMOOTHING, TOPIC_FEATURES, TOPIC_RAW, TOPIC_STATE, WARN_HEALTH,
                   dumps, exit_on_term, health, kurtosis, log, median, mqtt_client, remaining_life, rms)

ROLE = "analytics"
DATA = os.environ.get("DATA_DIR", "/data")
STATE_FILE = os.path.join(DATA, "state.json")
HISTORY_FILE = os.path.join(DATA, "history.jsonl")
HISTORY_MEMORY = 2000  # points kept in memory (and in the file after compaction)
HISTORY_FILE_MAX = 20000  # lines before the file is compacted to the last HISTORY_MEMORY
STATE_HISTORY = 240  # points in each pm/state message


class Analytics:
    def __init__(self):
        os.makedirs(DATA, exist_ok=True)
        self.state = {
            "baseline": None,
            "learning": [],
            "windows": 0,
            "starts": 0,
            "smoothed": None,
            "low": 0,
            "alert": {"active": False},
            "lastSensorMs": None,
            "machineOffsetMs": 0,
            "lastMachineMs": None,
        }
        self.history = []
        self.history_lines = 0
        self.load()
        self.state["starts"] += 1
        self.save_state()
        self.lock = threading.Lock()

    def load(self):
        try:
            with open(STATE_FILE) as f:
                self.state.update(json.load(f))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            log(ROLE, "state.json unreadable (%s): starting afresh" % e)
        try:
            with open(HISTORY_FILE) as f:
                for line in f:
                    self.history_lines += 1
                    try:
                        self.history.append(json.loads(line))
                    except ValueError:
                        continue  # a line cut by a power loss
                    if len(self.history) > HISTORY_MEMORY:
                        del self.history[: len(self.history) - HISTORY_MEMORY]
        except FileNotFoundError:
            pass
        if self.state["windows"]:
            log(ROLE, "continuing from the volume: %d windows, %d history points, baseline %s, alert %s"
                % (self.state["windows"], len(self.history), "learned" if self.state["baseline"] else "being learned", "raised" if self.state["alert"]["active"] else "not raised"))

    def save_state(self):
        tmp = STATE_FILE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, STATE_FILE)

    def save(self, point):
        self.save_state()
        with open(HISTORY_FILE, "a") as f:
            f.write(dumps(point) + "\n")
        self.history_lines += 1
        if self.history_lines > HISTORY_FILE_MAX:
            with open(HISTORY_FILE + ".tmp", "w") as f:
                for p in self.history:
                    f.write(dumps(p) + "\n")
            os.replace(HISTORY_FILE + ".tmp", HISTORY_FILE)
            self.history_lines = len(self.history)

    def machine_ms(self, sensor_ms):
        """The sensor's clock restarts with the sensor; the machine's hours go on."""
        s = self.state
        last = s["lastSensorMs"]
        if last is not None and sensor_ms < last:
            s["machineOffsetMs"] = s["lastMachineMs"] - sensor_ms
            log(ROLE, "the sensor's clock went back (restarted): machine time continues at %.2f h" % (s["lastMachineMs"] / 3.6e6))
        s["lastSensorMs"] = sensor_ms
        s["lastMachineMs"] = sensor_ms + s["machineOffsetMs"]
        return s["lastMachineMs"]

    def on_burst(self, b):
        s = self.state
        x = b["samples"]
        r, k = rms(x), kurtosis(x)
        t_ms = self.machine_ms(b["t"])
        s["windows"] += 1
        point = {"n": s["windows"], "seq": b["seq"], "t": t_ms, "rms": round(r, 3), "kurtosis": round(k, 4)}
        if s["baseline"] is None:
            s["learning"].append([r, k])
            if len(s["learning"]) >= BASELINE_WINDOWS:
                s["baseline"] = {"rms": median([p[0] for p in s["learning"]]), "kurtosis": median([p[1] for p in s["learning"]]), "windows": len(s["learning"]), "learnedAt": t_ms}
                s["learning"] = []
                log(ROLE, "baseline learned from %d windows: RMS %.1f mg, kurtosis %.2f" % (s["baseline"]["windows"], s["baseline"]["rms"], s["baseline"]["kurtosis"]))
        else:
            h = health(r, k, s["baseline"])
            s["smoothed"] = h if s["smoothed"] is None else SMOOTHING * h + (1 - SMOOTHING) * s["smoothed"]
            point["health"] = round(h, 2)
            point["smoothed"] = round(s["smoothed"], 2)
            trend = [(p["t"] / 3.6e6, p["smoothed"]) for p in self.history[-(RUL_WINDOWS - 1):] if "smoothed" in p] + [(t_ms / 3.6e6, s["smoothed"])]
            rul = remaining_life(trend)
            point["rulHours"] = None if rul is None else round(rul, 3)
            s["low"] = s["low"] + 1 if s["smoothed"] <= ALERT_HEALTH else 0
            if not s["alert"]["active"] and s["low"] >= ALERT_WINDOWS:
                s["alert"] = {"active": True, "raisedAtMs": t_ms, "window": s["windows"], "health": round(s["smoothed"], 2),
                              "reason": "health %.0f at or below %.0f for %d windows: bearing wear (RMS %.1f mg, kurtosis %.2f)" % (s["smoothed"], ALERT_HEALTH, ALERT_WINDOWS, r, k)}
                log(ROLE, "ALERT raised at machine time %.2f h: %s" % (t_ms / 3.6e6, s["alert"]["reason"]))
        self.history.append(point)
        if len(self.history) > HISTORY_MEMORY:
            del self.history[: len(self.history) - HISTORY_MEMORY]
        self.save(point)
        return point

    def summary(self):
        s = self.state
        last = self.history[-1] if self.history else None
        status = "learning" if s["baseline"] is None else "alert" if s["alert"]["active"] else "warning" if (s["smoothed"] or 100) <= WARN_HEALTH else "ok"
        return {
            "status": status,
            "windows": s["windows"],
            "starts": s["starts"],
            "baseline": s["baseline"],
            "learning": len(s["learning"]),
            "latest": last,
            "health": None if s["smoothed"] is None else round(s["smoothed"], 2),
            "rulHours": last.get("rulHours") if last else None,
            "alert": s["alert"],
            "method": {"baselineWindows": BASELINE_WINDOWS, "rmsLimit": RMS_LIMIT, "kurtosisLimit": KURT_LIMIT, "alertHealth": ALERT_HEALTH, "warnHealth": WARN_HEALTH, "alertWindows": ALERT_WINDOWS, "rulWindows": RUL_WINDOWS, "smoothing": SMOOTHING},
            "history": self.history[-STATE_HISTORY:],
        }


def main():
    a = Analytics()
    log(ROLE, "start %d; data in %s" % (a.state["starts"], DATA))

    def on_message(client, userdata, msg):
        try:
            b = json.loads(msg.payload)
        except ValueError:
            return
        with a.lock:
            point = a.on_burst(b)
            client.publish(TOPIC_FEATURES, dumps(point), qos=0)
            client.publish(TOPIC_STATE, dumps(a.summary()), qos=0, retain=True)

    def link(up):
        # What the volume holds is published on each connect, so a dashboard shows it before the next burst.
        if up:
            with a.lock:
                client.publish(TOPIC_STATE, dumps(a.summary()), qos=0, retain=True)

    client = mqtt_client(ROLE, on_message, [TOPIC_RAW], link)
    client.loop_forever(retry_first_connection=True)


if __name__ == "__main__":
    exit_on_term()
    main()
