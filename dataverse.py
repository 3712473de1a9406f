"""The one Dataverse Web API client: session, headers, paging, retries, throttling, errors, metadata.

No other module speaks HTTP to Dataverse or looks at a status code. Retry rules (DESIGN.md section 3):
429 is retried for every method (a throttled request never ran) and pauses all threads; 401 refreshes
the token once; 5xx and dropped connections are retried only for idempotent requests, while an unsafe
request (POST Merge) that may have been processed raises OutcomeUnknownError instead of being re-sent.
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import json as jsonlib
import logging
import math
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from errors import DataverseError, OutcomeUnknownError, UsageError

if TYPE_CHECKING:
    from auth import TokenProvider

log = logging.getLogger(__name__)

API_PATH = "api/data/v9.2/"
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
_AFFINITY_COOKIES = frozenset({"ARRAffinity", "ARRAffinitySameSite"})
_LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})
_UNSELECTABLE_TYPES = frozenset({"PartyList", "CalendarRules"})
_ENTITY_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_QUERY_SAFE = "$@'(),:/*!;"  # kept readable in query values; & # % + = and non-ASCII are percent-encoded
_TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_HINTS = {
    401: "Sign in again: Dataverse did not accept the token. Check that your account is a user in this environment.",
    403: "Your account lacks a privilege for this; ask an administrator for a security role that grants it.",
    429: "Dataverse's service protection limits kept refusing it; run again later or with fewer workers.",
}
_RETRY_HINT = "Check in Dataverse whether it took effect before sending it again."


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts, retry budget, connection pool and page size of one client."""

    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retries: int = 5  # for 5xx / connection errors on idempotent requests
    max_throttle_wait: float = 900  # total seconds one request may wait on 429s before giving up
    max_retry_after: float = 300.0  # cap on one Retry-After
    backoff_base: float = 0.5  # exponential backoff with full jitter
    pool_size: int = 64  # HTTPAdapter pool_connections/pool_maxsize (many worker threads)
    page_size: int = 5000


DEFAULT_SETTINGS = ClientSettings()


@dataclass(frozen=True)
class AttributeMetadata:
    """One column of a table, as far as reading and merging need it."""

    logical_name: str
    attribute_type: str
    is_valid_for_update: bool
    is_valid_for_read: bool
    attribute_of: str | None = None
    targets: tuple[str, ...] = ()  # lookup targets, e.g. ("account", "contact")

    @property
    def is_lookup(self) -> bool:
        return self.attribute_type in _LOOKUP_TYPES

    @property
    def select_name(self) -> str:
        """The Web API property to $select: ``_x_value`` for a lookup (``x`` itself is refused), else ``x``."""
        return f"_{self.logical_name}_value" if self.is_lookup else self.logical_name


@dataclass(frozen=True)
class EntityMetadata:
    """A table's names and columns (EntityDefinitions + Attributes)."""

    logical_name: str
    entity_set_name: str
    primary_id: str
    primary_name: str
    object_type_code: int | None
    attributes: Mapping[str, AttributeMetadata]

    def updatable(self) -> frozenset[str]:
        """Logical names with IsValidForUpdate: the only columns UpdateContent may carry."""
        return frozenset(name for name, a in self.attributes.items() if a.is_valid_for_update)

    def readable(self) -> list[str]:
        """The $select list: readable, not a companion (AttributeOf), lookups as ``_x_value``."""
        return sorted(
            a.select_name
            for a in self.attributes.values()
            if a.is_valid_for_read and not a.attribute_of and a.attribute_type not in _UNSELECTABLE_TYPES
        )

    def lookups(self) -> dict[str, tuple[str, ...]]:
        """Lookup / customer / owner columns -> the tables they may point to."""
        return {name: a.targets for name, a in self.attributes.items() if a.is_lookup}


@dataclass
class ClientStats:
    """Counters shared by all threads using one client."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429s seen
    throttle_wait_s: float = 0.0
    dop_hint: int | None = None  # last x-ms-dop-hint seen
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def add(self, *, requests: int = 0, retries: int = 0, throttled: int = 0, throttle_wait_s: float = 0.0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.throttled += throttled
            self.throttle_wait_s += throttle_wait_s

    def note_dop_hint(self, hint: int) -> None:
        with self._lock:
            self.dop_hint = hint

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class _ThrottleGate:
    """After a 429 no thread sends until the Retry-After moment (Microsoft: pause all requests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_at = 0.0

    def close_for(self, seconds: float) -> None:
        with self._lock:
            self._open_at = max(self._open_at, time.monotonic() + seconds)

    def wait(self) -> float:
        start = time.monotonic()
        while True:
            with self._lock:
                remaining = self._open_at - time.monotonic()
            if remaining <= 0:
                return time.monotonic() - start if remaining < 0 and self._open_at > start else 0.0
            time.sleep(remaining)


class _BearerAuth(requests.auth.AuthBase):
    """Sets the Authorization header from the token provider on every request (it renews as needed)."""

    def __init__(self, tokens: TokenProvider) -> None:
        self._tokens = tokens

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._tokens.get_token()}"
        return r


class _NoAffinityCookies(http.cookiejar.DefaultCookiePolicy):
    """Drop ARR affinity cookies so requests spread over the web servers (Microsoft's throughput advice)."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return cookie.name not in _AFFINITY_COOKIES and super().set_ok(cookie, request)


@dataclass
class _Call:
    """One logical request and its retry bookkeeping."""

    method: str
    url: str
    short: str  # path and query relative to the API root, for logs
    what: str  # "POST Merge", for messages
    safe: bool
    attempt: int = 0
    retries: int = 0
    throttles: int = 0
    throttle_wait: float = 0.0
    refreshed: bool = False
