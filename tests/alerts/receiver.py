"""A real webhook receiver on 127.0.0.1: records each delivery, dedupes by delivery id,
verifies signatures; can be down (connection refused) or failing (503)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from leadscore.alerts import verify


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    def __init__(self, secret: str, port: int | None = None):
        self.secret = secret
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.counts: Counter[str] = Counter()
        self.bodies: dict[str, Any] = {}
        self.received_at: dict[str, float] = {}
        self.bad_signatures = 0
        self.fail_with: int | None = None
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.fail_with:
                    self.send_response(receiver.fail_with)
                    self.end_headers()
                    return
                delivery = self.headers.get("X-Leadscore-Delivery", "")
                with receiver._lock:
                    if not verify(body, receiver.secret,
                                  self.headers.get("X-Leadscore-Signature")):
                        receiver.bad_signatures += 1
                    receiver.counts[delivery] += 1
                    receiver.bodies.setdefault(delivery, json.loads(body))
                    receiver.received_at.setdefault(delivery, time.time())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, n: int, timeout: float = 20.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.counts) >= n:
                return True
            time.sleep(0.02)
        return False
