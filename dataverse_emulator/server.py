"""The HTTP side: a threaded stdlib server and the request pipeline around the router.

Per request: pick the web server (webservers.py: the affinity cookie's, else the next in turn), authenticate
(Bearer token; optional exact token; token lifetime fault), advance detection jobs, draw the injected faults
(503 before processing, a slow delay, a dropped answer after processing), admit it through that server's
service protection limiter, wait the configured latency, route it, and answer with the headers Dataverse sends
(`OData-Version`, `x-ms-service-request-id`, the server's `x-ms-dop-hint`, the `ARRAffinity` cookies).
Every request is logged into `store.counters.requests`. Unexpected exceptions become a 500 and serving goes on.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .batch import handle_batch, is_batch
from .cascade import advance_cascades
from .context import Context, Handler
from .counts import take_snapshot
from .detection import advance_jobs
from .errors import ServiceError
from .operations import ACTIONS, COLLECTION_BOUND, FUNCTIONS
from .options import EmulatorOptions
from .prefer import Annotations, parse_prefer
from .routes import Router
from .store import RequestLogEntry, Store
from .webservers import WebFarm, WebServer
from .wire import API_PREFIX, ApiRequest, ApiResponse, error_response, json_response

log = logging.getLogger(__name__)
MAX_URL = 32768
UNAVAILABLE_CODE = "0x80040216"
AUTH_CODE = "0x80072560"


@dataclass
class _Draw:
    fail_503: bool = False
    slow_s: float = 0.0
    drop: bool = False


class Emulator:
    """The application: everything between a parsed HTTP request and its response."""

    def __init__(self, store: Store, options: EmulatorOptions, base_url: str) -> None:
        self.store = store
        self.options = options
        self.base_url = base_url
        self.api_url = base_url.rstrip("/") + API_PREFIX
        self.actions: dict[str, Handler] = dict(ACTIONS)
        self.functions: dict[str, Handler] = dict(FUNCTIONS)
        self.router = Router(self.actions, self.functions, collection_bound=COLLECTION_BOUND)
        self.farm = WebFarm(options)
        self.servers: list[WebServer] = self.farm.servers
        self.limiter = self.servers[0].limiter  # the first server's (the only one unless web_servers > 1)
        self._rng = random.Random(options.seed)
        self._rng_lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._caller: str | None = None
        self.tenant_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "dataverse-emulator/tenant"))
        take_snapshot(store, time.time())  # RetrieveTotalRecordCount answers from snapshots (counts.py)

    # -- identity ------------------------------------------------------------------------------------------------
    def caller_id(self) -> str:
        """The demo admin: the first systemuser in the store (one is created when there is none)."""
        with self.store.lock:
            users = self.store.tables["systemuser"]
            if self._caller is None or self._caller not in users:
                if not users:
                    self.store.insert("systemuser", {"fullname": "Emulator Admin", "isdisabled": False,
                                                     "domainname": "admin@emulator.local",
                                                     "internalemailaddress": "admin@emulator.local"})
                self._caller = next(iter(users))
            return self._caller

    def authenticate(self, req: ApiRequest) -> str:
        scheme, _, token = req.header("authorization").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("Bearer authorization token not found in the request header 'Authorization'.")
        required = self.options.require_token
        if required is not None and token != required:
            raise _unauthorized("The Bearer authorization token is invalid for this organization.", "invalid_token")
        ttl = self.options.faults.token_ttl
        if ttl is not None:
            now = time.monotonic()
            with self._rng_lock:
                first = self._tokens.setdefault(token, now)
            if now - first > ttl:
                raise _unauthorized("The Bearer authorization token has expired.", "invalid_token")
        return self.caller_id()

    def context(self, caller: str) -> Context:
        return Context(self.store, self.options, caller, self.api_url)

    # -- pipeline ------------------------------------------------------------------------------------------------
    def _draw(self) -> _Draw:
        f = self.options.faults
        draw = _Draw()
        with self._rng_lock:
            if f.error_503 > 0:
                draw.fail_503 = self._rng.random() < f.error_503
            if f.slow is not None:
                draw.slow_s = f.slow[1] if self._rng.random() < f.slow[0] else 0.0
            if f.drop > 0:
                draw.drop = self._rng.random() < f.drop
        return draw

    def handle(self, req: ApiRequest) -> tuple[ApiResponse, bool]:
        """Answer one HTTP request. The flag says to drop the connection instead of answering."""
        started = time.perf_counter()
        caller, drop = "", False
        server = self.farm.route(req.header("cookie"))
        try:
            if len(req.target) > MAX_URL:
                raise ServiceError(414, "0x80060888", f"The URL is {len(req.target)} characters long; the limit is "
                                   f"{MAX_URL}. Send long queries inside $batch or split them.")
            caller = self.authenticate(req)
            draw = self._draw()
            if draw.fail_503:
                raise ServiceError(503, UNAVAILABLE_CODE, "The service is temporarily unavailable. Please retry "
                                   "the request later.", {"Retry-After": "1"})
            drop = draw.drop
            self._advance_jobs(caller)
            resp = self._admitted(req, caller, draw.slow_s, server)
        except ServiceError as exc:
            resp = error_response(exc, Annotations.from_prefs(parse_prefer(req.header("prefer"))).wants)
            if exc.status == 429:
                with self.store.lock:
                    self.store.counters.throttled += 1
        except Exception as exc:  # noqa: BLE001 - the service answers 500 and keeps serving
            log.exception("unexpected error serving %s %s", req.method, req.target)
            resp = json_response(500, {"error": {"code": UNAVAILABLE_CODE, "message": f"{type(exc).__name__}: {exc}"}})
        self._finish(req, resp, caller, started, server)
        return resp, drop

    def _advance_jobs(self, caller: str) -> None:
        """Detection jobs and deferred merge cascades move on with the clock, checked on every request."""
        ctx = self.context(caller)
        advance_jobs(ctx)  # it takes store.lock itself, only while reading and writing rows
        advance_cascades(self.store, ctx.clock())

    def _admitted(self, req: ApiRequest, caller: str, slow_s: float, server: WebServer) -> ApiResponse:
        """Run the request under its server's limiter: latency and slowness happen while it counts as in flight."""
        limiter = server.limiter
        ticket = limiter.acquire(caller) if limiter is not None else None
        exec_s = 0.0
        try:
            if self.options.latency_ms > 0:
                time.sleep(self.options.latency_ms / 1000.0)
            t0 = time.perf_counter()
            if slow_s > 0:
                time.sleep(slow_s)
            try:
                return self.process(req, caller)
            finally:
                exec_s = time.perf_counter() - t0
        finally:
            if limiter is not None and ticket is not None:
                limiter.release(ticket, exec_s)

    def process(self, req: ApiRequest, caller: str) -> ApiResponse:
        """Route one request (a `$batch` is answered by batch.py, which routes each part)."""
        if is_batch(req):
            return handle_batch(self, req, caller)
        return self.router.dispatch(self.context(caller), req)

    def _finish(self, req: ApiRequest, resp: ApiResponse, caller: str, started: float, server: WebServer) -> None:
        request_id = str(uuid.uuid4())
        h = resp.headers
        h["OData-Version"] = "4.0"
        h["x-ms-service-request-id"] = request_id
        h["REQ_ID"] = request_id
        h["x-ms-dop-hint"] = str(server.dop_hint)
        resp.cookies = self.farm.set_cookies(server)
        if server.limiter is not None and caller:
            left, secs = server.limiter.remaining(caller)
            h["x-ms-ratelimit-burst-remaining-xrm-requests"] = str(left)
            h["x-ms-ratelimit-time-remaining-xrm-requests"] = f"{secs:.2f}"
        if resp.status == 401:
            h.setdefault("WWW-Authenticate", f"Bearer authorization_uri=https://login.microsoftonline.com/"
                                             f"{self.tenant_id}/oauth2/authorize, resource_id={self.base_url}")
        path = req.target.split("?", 1)[0]
        entry = RequestLogEntry(req.method, path, resp.status, (time.perf_counter() - started) * 1000.0, caller,
                                server.index)
        with self.store.lock:
            self.store.counters.requests.append(entry)


def _unauthorized(message: str, error: str | None = None) -> ServiceError:
    """401 with an empty body and a Bearer challenge naming the authority (settled-2026-11.md Q6); the
    message is kept for logs only."""
    return ServiceError(401, AUTH_CODE, message)


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DataverseEmulator/1.0"
    disable_nagle_algorithm = True
    server: EmulatorServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # here, in the worker thread, not in the accept loop
        super().setup()

    def _serve(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp, drop = self.server.app.handle(ApiRequest(self.command, self.path, headers, body))
        if drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(resp.status, resp.reason)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        for cookie in resp.cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(resp.body)))
        # one write for head and body: two small writes would meet Nagle and delayed ACKs (40 ms stalls)
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(resp.body)
        self.flush_headers()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s - %s", self.address_string(), format % args)


class EmulatorServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the application; daemon threads so a stop never waits for idle clients."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], options: EmulatorOptions, store: Store) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _HTTPHandler)
        scheme = "http"
        if options.tls_cert is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(str(options.tls_cert), str(options.tls_key) if options.tls_key else None)
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
            scheme = "https"
        host, port = self.server_address[:2]
        self.url = f"{scheme}://[{host}]:{port}/" if ":" in host else f"{scheme}://{host}:{port}/"
        self.app = Emulator(store, options, self.url)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)
