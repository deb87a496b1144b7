"""service1 of the walkthrough: an in-memory user store, every user stamped with SERVICE_VERSION.

GET/POST /api/users, GET/PUT/DELETE /api/users/{id}, GET /healthz. Listens on $HOST:$PORT.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = os.environ.get("SERVICE_VERSION", "v1")
USERS: dict[int, dict[str, Any]] = {}
LOCK = threading.Lock()
NEXT_ID = [1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True
    server_version = f"users/{VERSION}"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        if not length:
            return {}
        try:
            data = json.loads(self.rfile.read(length))
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _user_id(self) -> int | None:
        parts = self.path.split("?")[0].rstrip("/").split("/")
        if len(parts) == 4 and parts[1:3] == ["api", "users"] and parts[3].isdigit():
            return int(parts[3])
        return None

    def _is_collection(self) -> bool:
        return self.path.split("?")[0].rstrip("/") == "/api/users"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"status": "ok", "version": VERSION})
        elif self._is_collection():
            with LOCK:
                self._send(200, sorted(USERS.values(), key=lambda u: u["id"]))
        elif (user_id := self._user_id()) is not None:
            with LOCK:
                user = USERS.get(user_id)
            self._send(200, user) if user else self._send(404, {"error": f"no user {user_id}"})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        if not self._is_collection():
            self._send(404, {"error": "not found"})
            return
        body = self._body()
        with LOCK:
            user = {"id": NEXT_ID[0], "username": str(body.get("username", "")), "version": VERSION}
            USERS[user["id"]] = user
            NEXT_ID[0] += 1
        self._send(201, user)

    def do_PUT(self) -> None:
        user_id = self._user_id()
        body = self._body()
        with LOCK:
            if user_id is None or user_id not in USERS:
                self._send(404, {"error": f"no user {user_id}"})
                return
            USERS[user_id] = {
                "id": user_id,
                "username": str(body.get("username", "")),
                "version": VERSION,
            }
            self._send(200, USERS[user_id])

    def do_DELETE(self) -> None:
        user_id = self._user_id()
        with LOCK:
            user = USERS.pop(user_id, None) if user_id is not None else None
        self._send(200, {**user, "version": VERSION}) if user else self._send(
            404, {"error": f"no user {user_id}"}
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs under bursts: a 1 s retransmit per drop.
    request_queue_size = 128


def main() -> None:
    server = Server(
        (os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8088"))), Handler
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
