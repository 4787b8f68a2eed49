"""The dashboard: one web page (GET /) with the live signal, the health score and its trend, the remaining-useful-
life estimate and the alert, fed by GET /api/state, which this process answers from what it hears on the broker
(pm/raw, pm/state, pm/collector). Read-only: nothing on the page changes the stack. PORT (default 8080), TITLE.
"""

import html
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pmlib import TOPIC_COLLECTOR, TOPIC_RAW, TOPIC_STATE, dumps, exit_on_term, log, mqtt_client

ROLE = "dashboard"
HERE = os.path.dirname(os.path.abspath(__file__))
TITLE = os.environ.get("TITLE", "Spindle 1")[:60]
PORT = int(os.environ.get("PORT", "8080"))
SIGNAL_POINTS = 512  # samples of the latest burst shown (its first ones: 0.1 s at 5120 Hz)

lock = threading.Lock()
seen = {"state": None, "signal": None, "collector": None, "broker": False, "updated": None}


def on_message(client, userdata, msg):
    try:
        data = json.loads(msg.payload)
    except ValueError:
        return
    with lock:
        seen["updated"] = time.time()
        if msg.topic == TOPIC_RAW:
            seen["signal"] = {"seq": data.get("seq"), "t": data.get("t"), "rate": data.get("rate"), "samples": data.get("samples", [])[:SIGNAL_POINTS]}
        elif msg.topic == TOPIC_STATE:
            seen["state"] = data
        elif msg.topic == TOPIC_COLLECTOR:
            seen["collector"] = data


class Handler(BaseHTTPRequestHandler):
    server_version = "pm-dashboard"

    def log_message(self, fmt, *args):
        pass  # one line per poll would drown the app's log

    def send(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            with open(os.path.join(HERE, "dashboard.html"), "rb") as f:
                page = f.read().replace(b"{{TITLE}}", html.escape(TITLE).encode())
            self.send(200, page, "text/html; charset=utf-8")
        elif path == "/api/state":
            with lock:
                body = dumps({"title": TITLE, "broker": seen["broker"], "updated": seen["updated"], "now": time.time(), "state": seen["state"], "signal": seen["signal"], "collector": seen["collector"]})
            self.send(200, body.encode(), "application/json")
        elif path == "/health":
            self.send(200, b"ok\n", "text/plain")
        else:
            self.send(404, b"not found\n", "text/plain")


def main():
    def link(up):
        with lock:
            seen["broker"] = up

    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(ROLE, "serving %r on port %d" % (TITLE, PORT))
    client = mqtt_client(ROLE, on_message, (TOPIC_RAW, TOPIC_STATE, TOPIC_COLLECTOR), link)
    client.loop_forever(retry_first_connection=True)


if __name__ == "__main__":
    exit_on_term()
    main()
