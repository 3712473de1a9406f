"""The environment's web servers: where a request lands, and the affinity cookie that keeps it there.

Dataverse enforces its service protection limits per user *per web server* (api-limits.md: "Each web server
available to your environment will enforce these limits independently"), and a response carries an ARR
affinity cookie so later requests return to the same server; a client that drops the cookie is spread over
all of them ("send-parallel-requests.md", Server affinity). The emulator models `options.web_servers` such
servers over one shared store: each has its own `Limiter` (requests, execution time, concurrency) and its own
`x-ms-dop-hint`. A request whose `Cookie` names a server (`ARRAffinity` or `ARRAffinitySameSite`, 64 hex
digits) goes there; any other request goes to the next server in turn (round robin), and its response sets
the cookie naming the server that answered. With one server every request lands on it.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import dataclass

from .limits import Limiter
from .options import EmulatorOptions

AFFINITY_COOKIES = ("ARRAffinity", "ARRAffinitySameSite")


@dataclass
class WebServer:
    """One web server: its number, the affinity value naming it, its limiter and its parallelism hint."""

    index: int
    affinity: str
    limiter: Limiter | None
    dop_hint: int


class WebFarm:
    """The web servers of one environment and the load balancer in front of them."""

    def __init__(self, options: EmulatorOptions) -> None:
        if options.web_servers < 1:
            raise ValueError(f"web_servers must be at least 1, not {options.web_servers}")
        self.servers = [
            WebServer(i, affinity_value(options.seed, i),
                      Limiter(options.limits) if options.limits is not None else None, options.dop_hint)
            for i in range(options.web_servers)
        ]
        self._by_affinity = {s.affinity: s for s in self.servers}
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._secure = options.tls_cert is not None

    def route(self, cookie_header: str) -> WebServer:
        """The server named by the request's affinity cookie, else the next one in turn."""
        for name, value in parse_cookies(cookie_header):
            if name in AFFINITY_COOKIES and value.lower() in self._by_affinity:
                return self._by_affinity[value.lower()]
        with self._lock:
            return self.servers[next(self._turn) % len(self.servers)]

    def set_cookies(self, server: WebServer) -> list[str]:
        """The two Set-Cookie values Azure's ARR sends (SameSite=None for browsers that need it)."""
        secure = ";Secure" if self._secure else ""  # a Secure cookie never comes back over plain http
        return [f"ARRAffinity={server.affinity};Path=/;HttpOnly{secure}",
                f"ARRAffinitySameSite={server.affinity};Path=/;HttpOnly;SameSite=None{secure}"]


def affinity_value(seed: int, index: int) -> str:
    """64 hex digits, as Azure's affinity cookies carry; stable for a seed so a restarted emulator keeps them."""
    return hashlib.sha256(f"dataverse-emulator/web-server/{seed}/{index}".encode()).hexdigest()


def parse_cookies(header: str) -> list[tuple[str, str]]:
    """`a=1; b=2` -> [("a", "1"), ("b", "2")] (tolerant: pieces without `=` are skipped)."""
    out = []
    for piece in header.split(";"):
        name, eq, value = piece.strip().partition("=")
        if eq:
            out.append((name.strip(), value.strip().strip('"')))
    return out
