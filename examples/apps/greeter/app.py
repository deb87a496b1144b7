"""service2 of the walkthrough: greets users it fetches from service1 (SERVICE1_URL).

GET /api/users/{id} -> "Hello, <username> <version>" (or "error" when service1 fails), DELETE ->
"Bye, ...", GET/POST /api/users pass through. Calls go through HTTP_PROXY when it is set (urllib
reads it), which is how the sandbox puts the sidecar in the path. Listens on $HOST:$PORT.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVICE1 = os.environ.get("SERVICE1_URL", "http://service1:8088").rstrip("/")
# Longer than any mesh timeout, so the mesh's timeouts are the ones that fire.
TIMEOUT = float(os.environ.get("SERVICE1_TIMEOUT", "10"))
PROPAGATED = ("end-user", "x-request-id")
# Service names are not in NO_PROXY: the sidecar must see every call.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, text: str, content_type: str = "text/plain") -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _call(self, method: str, body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(SERVICE1 + self.path, data=body, method=method)
        for name in PROPAGATED:
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        if body is not None:
            request.add_header("content-type", "application/json")
        try:
            with OPENER.open(request, timeout=TIMEOUT) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 599, b""

    def _single(self, method: str, greeting: str) -> None:
        status, body = self._call(method)
        if status >= 400:
            self._send(200, "error")
            return
        user = json.loads(body)
        self._send(200, f"{greeting}, {user.get('username', '')} {user.get('version', '')}")

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, "ok")
        elif self.path.split("?")[0].rstrip("/") == "/api/users":
            status, body = self._call("GET")
            self._send(
                200 if status < 400 else 502,
                body.decode() if status < 400 else "error",
                "application/json",
            )
        else:
            self._single("GET", "Hello")

    def do_DELETE(self) -> None:
        self._single("DELETE", "Bye")

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        status, body = self._call(method, self.rfile.read(length) if length else b"{}")
        self._send(status if status < 599 else 502, body.decode() or "error", "application/json")

    def do_POST(self) -> None:
        self._forward("POST")

    def do_PUT(self) -> None:
        self._forward("PUT")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs under bursts: a 1 s retransmit per drop.
    request_queue_size = 128


def main() -> None:
    server = Server(
        (os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8880"))), Handler
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
