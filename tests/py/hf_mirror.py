#!/usr/bin/python3
"""hf_mirror.py — a Hugging Face mirror for tests, on 127.0.0.1 only:
GET /<org>/<name>/resolve/main/<file> serves ROOT/<file>. Repositories
named "truncated" send half of model.safetensors and close the connection
(a dropped download); "stalled" send half and then wait (a download to be
interrupted). Writes its port to PORTFILE, one line per request to LOG, and
exits by itself after LIFETIME seconds.

usage: hf_mirror.py ROOT PORTFILE LOG [LIFETIME]
"""
import http.server
import os
import sys
import threading
import time

ROOT, PORTFILE, LOG = sys.argv[1:4]
LIFETIME = float(sys.argv[4]) if len(sys.argv) > 4 else 120


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(LOG, "a") as log:
            log.write(self.path + "\n")
        parts = self.path.split("/")
        if len(parts) < 6 or parts[3:5] != ["resolve", "main"]:
            self.send_error(404)
            return
        path = os.path.join(ROOT, *parts[5:])
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        partial = parts[2] in ("truncated", "stalled") and parts[-1] == "model.safetensors"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if partial else data)
        self.wfile.flush()
        if partial and parts[2] == "stalled":
            time.sleep(LIFETIME)
        self.close_connection = True

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(PORTFILE + ".part", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".part", PORTFILE)
threading.Timer(LIFETIME, server.shutdown).start()
server.serve_forever()
