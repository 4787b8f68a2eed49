"""The collector: reads the vibration sensor's lines from the serial port the app was given (adapters) and
publishes each burst to the broker (pm/raw), and its own counters (pm/collector, retained).

The port: SERIAL_DEVICE, or the first serial device the container has (evebox puts a pty at /dev/ttyV0, a real
port at its own path: /dev/ttyS1, /dev/ttyUSB0, ...). SERIAL_BAUD sets the speed of a real port (default 115200).
"""

import glob
import os
import termios
import time

from pmlib import TOPIC_COLLECTOR, TOPIC_RAW, dumps, exit_on_term, log, mqtt_client, parse_line

ROLE = "collector"
PATTERNS = ["/dev/ttyV*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyAMA*", "/dev/ttyS*"]
BAUDS = {9600: termios.B9600, 19200: termios.B19200, 38400: termios.B38400, 57600: termios.B57600, 115200: termios.B115200, 230400: termios.B230400, 460800: termios.B460800, 921600: termios.B921600}
MAX_LINE = 1 << 16


def find_port():
    if os.environ.get("SERIAL_DEVICE"):
        return os.environ["SERIAL_DEVICE"]
    for pattern in PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def open_port(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    baud = BAUDS.get(int(os.environ.get("SERIAL_BAUD", "115200")), termios.B115200)
    attrs = termios.tcgetattr(fd)
    # Raw, 8N1, no flow control, no echo: bytes as the sensor sends them.
    attrs[0] = 0  # iflag
    attrs[1] = 0  # oflag
    attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL  # cflag
    attrs[3] = 0  # lflag
    attrs[4] = attrs[5] = baud
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return fd


def main():
    stats = {"device": None, "bursts": 0, "rejected": 0, "lastSeq": None, "lastError": None, "since": time.time()}

    def link(up):
        if up:
            client.publish(TOPIC_COLLECTOR, dumps(stats), qos=0, retain=True)

    client = mqtt_client(ROLE, on_link=link)
    client.loop_start()
    last_report = 0.0
    while True:
        path = find_port()
        if not path:
            stats["lastError"] = "no serial port in the container: give the app the sensor's port (adapters)"
            log(ROLE, stats["lastError"])
            client.publish(TOPIC_COLLECTOR, dumps(stats), qos=0, retain=True)
            time.sleep(5)
            continue
        try:
            fd = open_port(path)
        except OSError as e:
            stats["lastError"] = "cannot open %s: %s" % (path, e)
            log(ROLE, stats["lastError"])
            time.sleep(2)
            continue
        stats["device"] = path
        log(ROLE, "reading the sensor on %s" % path)
        buf = b""
        first = True
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    time.sleep(0.1)
                    continue
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        b = parse_line(line)
                    except ValueError as e:
                        # The first line after opening may be the tail of a burst: not counted as an error.
                        if not first:
                            stats["rejected"] += 1
                            stats["lastError"] = str(e)
                        first = False
                        continue
                    first = False
                    stats["bursts"] += 1
                    stats["lastSeq"] = b["seq"]
                    client.publish(TOPIC_RAW, dumps(b), qos=0)
                if len(buf) > MAX_LINE:
                    stats["rejected"] += 1
                    stats["lastError"] = "line longer than %d bytes" % MAX_LINE
                    buf = b""
                now = time.time()
                if now - last_report >= 2:
                    client.publish(TOPIC_COLLECTOR, dumps(stats), qos=0, retain=True)
                    last_report = now
        except OSError as e:
            stats["lastError"] = "reading %s: %s" % (path, e)
            log(ROLE, stats["lastError"] + "; opening it again")
            try:
                os.close(fd)
            except OSError:
                pass
            time.sleep(1)


if __name__ == "__main__":
    exit_on_term()
    main()
