"""A server process for end-to-end tests: answers every request with its name.

Run as C{python tests/named_server.py NAME [PORT]}; it prints
C{listening on PORT} once it accepts connections (port 0: one the system
chooses), and serves HTTP/1.1 with keep-alive until it is killed.
C{/slow/SECONDS} answers after so long.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Named(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    name = ""

    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):
            time.sleep(float(self.path[len("/slow/") :]))
        body = f"server {self.name}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reads stdout for the port only


def main(name: str, port: int) -> None:
    _Named.name = name
    ThreadingHTTPServer.allow_reuse_address = True  # restarted on its port
    server = ThreadingHTTPServer(("127.0.0.1", port), _Named)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
