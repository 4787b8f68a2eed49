"""What the collector, analytics and dashboard share: the sensor's line protocol, the features of a burst, the
health score and the remaining-useful-life estimate, and an MQTT connection that keeps trying.

The method (README.md, "How the health score and the estimate are made") in short:
  features per burst: RMS and kurtosis of the samples;
  baseline: the median RMS and kurtosis of the first BASELINE_WINDOWS bursts (a healthy machine);
  damage: r = (rms/rms0 - 1) / (RMS_LIMIT - 1), k = (kurt/kurt0 - 1) / (KURT_LIMIT - 1), each clamped to 0..1;
  health = 100 * (1 - max(r, k)), smoothed by an exponential moving average (SMOOTHING);
  alert: the smoothed health at or below ALERT_HEALTH for ALERT_WINDOWS bursts in a row;
  remaining useful life: a least-squares line through the last RUL_WINDOWS (machine time, smoothed health)
  points, extrapolated to ALERT_HEALTH; none while the trend is not falling.
"""

import json
import math
import os
import sys
import time

BASELINE_WINDOWS = int(os.environ.get("PM_BASELINE_WINDOWS", "10"))
RMS_LIMIT = float(os.environ.get("PM_RMS_LIMIT", "2.0"))
KURT_LIMIT = float(os.environ.get("PM_KURT_LIMIT", "1.6"))
SMOOTHING = 0.3
ALERT_HEALTH = float(os.environ.get("PM_ALERT_HEALTH", "30"))
WARN_HEALTH = 60.0
ALERT_WINDOWS = 3
RUL_WINDOWS = 20
RUL_MIN_POINTS = 8

TOPIC_RAW = "pm/raw"
TOPIC_FEATURES = "pm/features"
TOPIC_STATE = "pm/state"
TOPIC_COLLECTOR = "pm/collector"


def exit_on_term():
    """As PID 1 of its container, a process gets no default action for SIGTERM: without this, a stop would wait
    for the engine's timeout and a SIGKILL."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def log(role, text):
    sys.stdout.write("%s %s: %s\n" % (time.strftime("%H:%M:%S"), role, text))
    sys.stdout.flush()


def checksum(body):
    c = 0
    for b in body:
        c ^= b
    return "%02X" % c


def parse_line(line):
    """One $VIB line (bytes) -> dict(seq, t_ms, rate, samples), or raises ValueError saying why."""
    line = line.strip()
    if not line.startswith(b"$VIB,") or len(line) < 9 or line[-3:-2] != b"*":
        raise ValueError("not a $VIB line")
    body, cs = line[1:-3], line[-2:].decode("ascii", "replace")
    if checksum(body) != cs:
        raise ValueError("checksum mismatch")
    fields = body.split(b",")[1:]
    try:
        seq, t_ms, rate, n = int(fields[0]), int(fields[1]), float(fields[2]), int(fields[3])
        samples = [int(x) for x in fields[4:]]
    except (ValueError, IndexError):
        raise ValueError("bad field")
    if n < 1 or len(samples) != n:
        raise ValueError("count %d but %d samples" % (n, len(samples)))
    if rate <= 0:
        raise ValueError("bad sample rate")
    return {"seq": seq, "t": t_ms, "rate": rate, "samples": samples}


def rms(x):
    return math.sqrt(sum(v * v for v in x) / len(x))


def kurtosis(x):
    """Not excess kurtosis: a Gaussian is 3, a sine 1.5."""
    n = len(x)
    mean = sum(x) / n
    m2 = m4 = 0.0
    for v in x:
        d2 = (v - mean) ** 2
        m2 += d2
        m4 += d2 * d2
    m2 /= n
    m4 /= n
    return m4 / (m2 * m2) if m2 > 0 else 0.0


def clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def health(rms_v, kurt_v, baseline):
    r = clamp((rms_v / baseline["rms"] - 1) / (RMS_LIMIT - 1), 0.0, 1.0)
    k = clamp((kurt_v / baseline["kurtosis"] - 1) / (KURT_LIMIT - 1), 0.0, 1.0)
    return 100.0 * (1.0 - max(r, k))


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def remaining_life(points, threshold=ALERT_HEALTH):
    """points: [(machine hours, smoothed health)], oldest first. Hours until the fitted line reaches `threshold`
    (0 once it has), or None while the trend is not falling or there are too few points."""
    pts = points[-RUL_WINDOWS:]
    if len(pts) < RUL_MIN_POINTS:
        return None
    if pts[-1][1] <= threshold:
        return 0.0
    n = len(pts)
    mt = sum(p[0] for p in pts) / n
    mh = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mt) ** 2 for p in pts)
    if sxx <= 0:
        return None
    slope = sum((p[0] - mt) * (p[1] - mh) for p in pts) / sxx  # health points per machine hour
    if slope >= -1e-6:
        return None
    now = pts[-1][0]
    fitted_now = mh + slope * (now - mt)
    return max(0.0, (threshold - fitted_now) / slope)


def resolve_v4(role, host):
    """The broker's IPv4 address, asked for as an A record only. A connect by name also asks for AAAA, which the
    network instance's DNS forwards upstream for an app's name: on an offline device that waits out the resolver's
    timeouts (~15 s) before each connection. The name may not resolve for a moment after the app starts (its
    interface comes just after), so this tries again; the address is the app's reservation, stable across restarts."""
    import socket

    delay, tries = 0.2, 0
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError as e:
            tries += 1
            if tries in (1, 10) or tries % 50 == 0:
                log(role, "broker %s does not resolve yet (%s); trying again" % (host, e))
            time.sleep(delay)
            delay = min(delay * 2, 2)


def mqtt_client(role, on_message=None, topics=(), on_link=None):
    """A paho client for the broker (BROKER, default pm-broker); its loop (loop_start / loop_forever) connects,
    trying again until the broker is there, and reconnects after a loss. Subscriptions are (re)made on every
    connect; on_link(bool) hears of each connect and disconnect."""
    import paho.mqtt.client as mqtt

    host = os.environ.get("BROKER", "pm-broker")
    port = int(os.environ.get("BROKER_PORT", "1883"))
    client = mqtt.Client(client_id="pm-%s-%d" % (role, os.getpid()), clean_session=True)
    client.reconnect_delay_set(min_delay=1, max_delay=4)

    def on_connect(c, userdata, flags, rc):
        if rc == 0:
            log(role, "connected to the broker %s:%d" % (host, port))
            for t in topics:
                c.subscribe(t, qos=0)
        else:
            log(role, "the broker refused the connection (rc %d)" % rc)
        if on_link:
            on_link(rc == 0)

    def on_disconnect(c, userdata, rc):
        log(role, "lost the broker (rc %d); reconnecting" % rc)
        if on_link:
            on_link(False)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    if on_message:
        client.on_message = on_message
    # paho's loop makes the first connection and retries it like any later one (reconnect_delay_set).
    client.connect_async(resolve_v4(role, host), port, keepalive=30)
    return client


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))
