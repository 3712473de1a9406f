"""A tiny scriptable HTTP server on 127.0.0.1 for client tests.

Each test queues the answers it wants, in order: a ``(status, headers, body)`` tuple, a callable taking
the ``Received`` request and returning such a tuple, or ``DROP`` (close the socket without answering).
A body that is a dict or list is sent as JSON, str as text, bytes as is, None as empty. Every request is
recorded in ``server.received``. When the queue is empty the server answers 599 so a test sees it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Reply = tuple[int, dict[str, str], Any]
DROP = "DROP"


@dataclass
class Received:
    """One request as the server saw it (header names lower-case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def query(self) -> dict[str, list[str]]:
        """The query string, parsed (`$filter`, `$select`, ...)."""
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)


class ScriptServer:
    """ThreadingHTTPServer on a free loopback port, in a daemon thread, answering from a script."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Reply | Callable[[Received], Reply] | str] = deque()
        self.received: list[Received] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def script(self, *actions: Reply | Callable[[Received], Reply] | str) -> None:
        with self._lock:
            self._script.extend(actions)

    def next_action(self, request: Received) -> Reply | str:
        with self._lock:
            self.received.append(request)
            action = self._script.popleft() if self._script else (599, {}, {"error": {"message": "script empty"}})
        return action(request) if callable(action) else action

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _make_handler(server: ScriptServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            action = server.next_action(Received(self.command, self.path, headers, body))
            if action == DROP:
                self.close_connection = True  # return without a byte: the client sees the socket close
                return
            status, reply_headers, reply_body = action  # type: ignore[misc]
            payload = _encode(reply_body)
            self.send_response(status)
            if isinstance(reply_body, dict | list) and "Content-Type" not in reply_headers:
                self.send_header("Content-Type", "application/json; odata.metadata=minimal")
            for name, value in reply_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

    return Handler


def _encode(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")
