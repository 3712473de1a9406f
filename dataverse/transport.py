"""The HTTP plumbing under DataverseClient: session, auth header, affinity-free cookies, the shared
throttle gate, counters, and reading Retry-After and error bodies. Used only by dataverse.py.
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import json
import math
import threading
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from auth import TokenProvider

_AFFINITY_COOKIES = frozenset({"ARRAffinity", "ARRAffinitySameSite"})
REQUESTS_LIMIT_CODE = "0x80072322"  # a 429 for "Number of requests exceeded the limit of 6000 ..."
CONCURRENCY_LIMIT_CODE = "0x80072326"  # a 429 for "Number of concurrent requests exceeded the limit of 52."


@dataclass
class ClientStats:
    """Counters shared by all threads using one client."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429s seen
    throttled_requests: int = 0  # of which: the number of requests was the limit (0x80072322)
    throttled_concurrency: int = 0  # of which: too many requests at once (0x80072326)
    throttle_wait_s: float = 0.0
    dop_hint: int | None = None  # last x-ms-dop-hint seen
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def add(self, *, requests: int = 0, retries: int = 0, throttled: int = 0, throttle_wait_s: float = 0.0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.throttled += throttled
            self.throttle_wait_s += throttle_wait_s

    def note_throttle(self, code: str) -> None:
        """The error code of a 429: which limit was reached."""
        with self._lock:
            if code.lower() == REQUESTS_LIMIT_CODE:
                self.throttled_requests += 1
            elif code.lower() == CONCURRENCY_LIMIT_CODE:
                self.throttled_concurrency += 1

    def note_dop_hint(self, hint: int) -> None:
        with self._lock:
            self.dop_hint = hint

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


class ThrottleGate:
    """After a 429 no thread sends until the Retry-After moment (Microsoft: pause all requests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_at = 0.0

    def close_for(self, seconds: float) -> None:
        with self._lock:
            self._open_at = max(self._open_at, time.monotonic() + seconds)

    def wait(self) -> float:
        """Block until the gate is open; return the seconds waited."""
        start = time.monotonic()
        slept = False
        while True:
            with self._lock:
                remaining = self._open_at - time.monotonic()
            if remaining <= 0:
                return time.monotonic() - start if slept else 0.0
            time.sleep(remaining)
            slept = True


class BearerAuth(requests.auth.AuthBase):
    """Sets the Authorization header from the token provider on every request (it renews as needed)."""

    def __init__(self, tokens: TokenProvider) -> None:
        self._tokens = tokens

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._tokens.get_token()}"
        return r


class NoAffinityCookies(http.cookiejar.DefaultCookiePolicy):
    """Drop ARR affinity cookies so requests spread over the web servers (Microsoft's throughput advice)."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return cookie.name not in _AFFINITY_COOKIES and super().set_ok(cookie, request)


def new_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def prefer(annotations: bool, page_size: int | None) -> str:
    parts = ['odata.include-annotations="*"'] if annotations else []
    if page_size:
        parts.append(f"odata.maxpagesize={int(page_size)}")
    return ",".join(parts)


def parse_retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (a number, or an HTTP date); None when absent or unreadable."""
    return retry_after_seconds(response.headers.get("Retry-After") or "")


def retry_after_seconds(raw: str) -> float | None:
    """A Retry-After value (seconds, or an HTTP date) in seconds from now; None when empty or unreadable."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(raw).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def error_body(response: requests.Response) -> tuple[str, str]:
    """(code, one-line message) from ``{"error": {"code", "message"}}``, or a short text for other bodies."""
    return error_text(response.text, response.reason or "")


def error_text(text: str, reason: str = "") -> tuple[str, str]:
    """error_body for a body already read (a part of a $batch answer)."""
    try:
        body = json.loads(text)
    except ValueError:
        short = " ".join(text.split())[:200]
        return "", short or reason or "no details"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", " ".join(str(body).split())[:200]
    return str(error.get("code") or ""), " ".join(str(error.get("message") or "no details").split())[:500]


def never_sent(exc: BaseException) -> bool:
    """True when the connection was never made (refused, DNS, connect timeout): nothing reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    todo: list[Any] = [exc]
    seen: set[int] = set()
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
            return True
        todo.extend([*e.args, getattr(e, "reason", None), e.__cause__, e.__context__])
    return False


def transport_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "no connection within the connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer within the read timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed"
    if never_sent(exc):
        return "the connection was refused or the host name was not found"
    return "the connection dropped"
