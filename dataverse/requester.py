"""The request engine under DataverseClient: one session, OData headers, and the retry rules.

Retry rules (DESIGN.md section 3): 429 is retried for every method (a throttled request never ran) and pauses
all threads; 401 renews the token (once, or again after a throttle wait it may not have outlived) and a token
that cannot be renewed stops with TokenRefusedError, never to be sent again; 5xx and dropped connections are
retried only for idempotent requests, while an unsafe request (POST Merge) that may have been processed raises
OutcomeUnknownError instead of being re-sent. Every failure becomes a DataverseError subclass here: no other
module looks at a status code.
"""

from __future__ import annotations

import http.cookiejar
import json as jsonlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests

from dataverse.environment import normalize_uri
from dataverse.transport import (
    BearerAuth,
    ClientStats,
    NoAffinityCookies,
    ThrottleGate,
    error_body,
    never_sent,
    new_session,
    parse_retry_after,
    retry_after_seconds,
    transport_reason,
)
from errors import AuthError, DataverseError, NotFoundError, OutcomeUnknownError, TokenRefusedError

if TYPE_CHECKING:
    from auth import TokenProvider

log = logging.getLogger(__name__)

API_PATH = "api/data/v9.2/"
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
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
_TOKEN_HINT = ("Sign in again (or, with AUTH_MODE=access_token, provide a new ACCESS_TOKEN) and rerun: "
               "finished work is kept.")


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
    read_workers: int = 8  # chunks of a bulk read (get_many) in flight at once


DEFAULT_SETTINGS = ClientSettings()


@dataclass
class Call:
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
    refreshes: int = 0
    throttles_at_refresh: int = 0


class Requester:
    """Sends requests to one environment's Web API as the rules above say; DataverseClient builds on it."""

    def __init__(
        self,
        environment_uri: str,
        token_provider: TokenProvider,
        settings: ClientSettings = DEFAULT_SETTINGS,
        *,
        session: requests.Session | None = None,
        user_agent: str = "dynamics-duplicate-resolver/0.1",
    ) -> None:
        self.environment_uri = environment_uri if environment_uri.endswith("/") else environment_uri + "/"
        self.api_url = f"{self.environment_uri}{API_PATH}"
        self.settings = settings
        self.stats = ClientStats()
        self._host = urlsplit(self.environment_uri).netloc
        self._tokens = token_provider
        self._auth = BearerAuth(token_provider)
        self._user_agent = user_agent
        self._own_session = session is None
        self._session = session if session is not None else new_session(settings.pool_size)
        self._session.cookies.set_policy(NoAffinityCookies())
        self._gate = ThrottleGate()
        self._refused_token = ""  # "Bearer ..." Dataverse refused and the provider could not renew

    def keep_affinity(self) -> None:
        """Keep the ARRAffinity cookie from now on, so every request returns to one web server: for
        comparisons only (bench/merge_throughput.py); Microsoft's advice for throughput is to drop it."""
        self._session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy())

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200, 201, 204),
        safe_to_retry: bool | None = None,
    ) -> requests.Response:
        """Send one request, retrying as the rules in the module docstring say; raise DataverseError otherwise.

        The body is `json` (sent as JSON) or `data` (bytes as given, with the Content-Type in `headers`)."""
        method = method.upper()
        url = self._url(path, params)
        short = url[len(self.api_url) :] if url.startswith(self.api_url) else url
        call = Call(
            method=method,
            url=url,
            short=short if len(short) <= 500 else short[:500] + "...",
            what=f"{method} {short.split('?')[0]}",
            safe=(method in _IDEMPOTENT) if safe_to_retry is None else safe_to_retry,
        )
        if data is None and json is not None:
            data = jsonlib.dumps(json, ensure_ascii=False).encode("utf-8")
        send_headers = self._headers(headers, has_body=data is not None)
        while True:
            if self._refused_token and self._refused_token == f"Bearer {self._tokens.get_token()}":
                raise self._token_refused(call, self._refused_token)  # never send a refused token again
            waited = self._gate.wait()
            if waited:
                call.throttle_wait += waited
                self.stats.add(throttle_wait_s=waited)
            call.attempt += 1
            response = self._send(call, data, send_headers)
            if response is None:
                continue
            if response.status_code in expected:
                return response
            self._handle_refusal(call, response)

    def _url(self, path: str, params: Mapping[str, str] | None) -> str:
        if path.startswith(("http://", "https://")):
            url = self._own_link(path)
        else:
            url = self.api_url + path.lstrip("/")
        if params:
            query = "&".join(f"{quote(str(k), safe='$@')}={quote(str(v), safe=_QUERY_SAFE)}" for k, v in params.items())
            url += ("&" if "?" in url else "?") + query
        return url

    def _own_link(self, link: str) -> str:
        """A link Dataverse gave (an @odata.nextLink), on our API root even when its host differs in case or
        spells out the default port; a link anywhere else is refused: the token is never sent to another host."""
        parts = urlsplit(link)
        origin = normalize_uri(f"{parts.scheme}://{parts.netloc}/")
        ours = urlsplit(self.api_url)
        root = ours.path
        if origin == normalize_uri(f"{ours.scheme}://{ours.netloc}/") and parts.path.lower().startswith(root.lower()):
            rest = parts.path[len(root):] + (f"?{parts.query}" if parts.query else "")
            return self.api_url + rest
        raise DataverseError(f"Refusing to follow a link outside {self.api_url}: {link[:120]}")

    def _headers(self, extra: Mapping[str, str] | None, *, has_body: bool) -> dict[str, str]:
        headers = {
            "OData-Version": "4.0",
            "OData-MaxVersion": "4.0",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
        }
        if has_body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        headers.update(extra or {})
        return headers

    def _send(self, call: Call, data: bytes | None, headers: dict[str, str]) -> requests.Response | None:
        """One attempt. None means a transport failure that may be retried (the wait is done)."""
        started = time.monotonic()
        self.stats.add(requests=1)
        try:
            response = self._session.request(
                call.method,
                call.url,
                data=data,
                headers=headers,
                auth=self._auth,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                allow_redirects=False,
            )
        except _TRANSPORT_ERRORS as exc:
            ms = (time.monotonic() - started) * 1000
            log.warning(
                "%s %s -> %s after %.0f ms (attempt %d)",
                call.method, call.short, transport_reason(exc), ms, call.attempt,
            )
            delay = self._after_transport_error(call, exc)
            self.stats.add(retries=1)
            time.sleep(delay)
            return None
        ms = (time.monotonic() - started) * 1000
        log.info("%s %s -> %d in %.0f ms (attempt %d)", call.method, call.short, response.status_code, ms, call.attempt)
        hint = response.headers.get("x-ms-dop-hint", "")
        if hint.strip().isdigit():
            self.stats.note_dop_hint(int(hint))
        return response

    def _after_transport_error(self, call: Call, exc: Exception) -> float:
        """The backoff before retrying a failed attempt, or raise when it must not (or cannot) be retried."""
        reason = transport_reason(exc)
        if isinstance(exc, requests.exceptions.SSLError):
            raise DataverseError(
                f"Cannot make a secure connection to {self._host}: {reason}.",
                hint="Check ENVIRONMENT_URI; certificate verification stays on.",
            ) from exc
        if not call.safe and not never_sent(exc):
            unknown = OutcomeUnknownError(
                f"No answer to {call.what} from {self._host} ({reason}): the outcome is unknown.", hint=_RETRY_HINT
            )
            unknown.timed_out = isinstance(exc, requests.exceptions.ReadTimeout)
            raise unknown from exc
        if call.retries >= self.settings.max_retries:
            raise DataverseError(
                f"Cannot reach {self._host}: {reason}. Check ENVIRONMENT_URI and your network.", status=None
            ) from exc
        call.retries += 1
        return self._backoff(call.retries)

    @staticmethod
    def _may_refresh(call: Call) -> bool:
        """Once per request; again (up to 3) only if a throttle wait since the last refresh may have
        outlived the new token."""
        return call.refreshes == 0 or (call.refreshes < 3 and call.throttles > call.throttles_at_refresh)

    def _handle_refusal(self, call: Call, response: requests.Response) -> None:
        """Decide on an unexpected status: wait and return to retry, or raise."""
        status = response.status_code
        if status == 429:
            self._gate.close_for(self._throttle_delay(call, response))
            self.stats.add(throttled=1, retries=1)
            return
        if status == 401:  # not processed: renew the token and retry, unless renewing cannot help
            sent = (response.request.headers.get("Authorization") or "") if response.request is not None else ""
            if not self._may_refresh(call):
                raise self._token_refused(call, sent)
            call.refreshes += 1
            call.throttles_at_refresh = call.throttles
            try:
                renewed = self._tokens.get_token(force_refresh=True)
            except AuthError as exc:
                raise self._token_refused(call, sent, exc.message) from exc
            if sent and sent == f"Bearer {renewed}":  # a given ACCESS_TOKEN, or a provider that cannot renew
                raise self._token_refused(call, sent)
            self.stats.add(retries=1)
            return
        if status >= 500 and not call.safe:
            raise self._error(call, response, unknown=True)
        if status >= 500 and call.retries < self.settings.max_retries:
            call.retries += 1
            retry_after = parse_retry_after(response) if status == 503 else None
            self.stats.add(retries=1)
            time.sleep(self._backoff(call.retries) if retry_after is None else self._cap(retry_after))
            return
        raise self._error(call, response)

    def _throttle_delay(self, call: Call, response: requests.Response) -> float:
        call.throttles += 1
        self.stats.note_throttle(error_body(response)[0])
        retry_after = parse_retry_after(response)
        delay = self._backoff(call.throttles) if retry_after is None else self._cap(retry_after)
        if call.throttle_wait + delay > self.settings.max_throttle_wait:
            raise self._error(call, response)
        log.info("%s %s throttled: all requests pause for %.1f s", call.method, call.short, delay)
        return delay

    def _token_refused(self, call: Call, sent: str, why: str = "") -> TokenRefusedError:
        """Dataverse refused the token and a new one cannot be had: stop, and fail fast from now on."""
        self._refused_token = sent or self._refused_token
        reason = f" ({why})" if why else ""
        return TokenRefusedError(f"Dataverse refused the sign-in for {call.what} (HTTP 401) and it could not be "
                                 f"renewed{reason}.", status=401, hint=_TOKEN_HINT)

    def _cap(self, seconds: float) -> float:
        return min(seconds, self.settings.max_retry_after)

    def _backoff(self, n: int) -> float:
        """Exponential backoff with full jitter (n = 1 for the first retry)."""
        return random.uniform(0, self._cap(self.settings.backoff_base * 2 ** (n - 1)))

    def _error(self, call: Call, response: requests.Response, *, unknown: bool = False) -> DataverseError:
        code, message = error_body(response)
        return self._make_error(call, response.status_code, code, message, response.headers, unknown=unknown)

    def _make_error(self, call: Call, status: int, code: str, message: str, headers: Mapping[str, str], *,
                    unknown: bool = False) -> DataverseError:
        label = f"HTTP {status} {code}".strip()
        fields: dict[str, Any] = {
            "status": status,
            "code": code,
            # a $batch part names its request id REQ_ID (Microsoft's batch examples)
            "request_id": headers.get("x-ms-service-request-id", "") or headers.get("req_id", ""),
            "retry_after": retry_after_seconds(headers.get("retry-after", "") or ""),
        }
        if unknown:
            text = f"Dataverse failed {call.what} ({label}): {message} The outcome is unknown."
            return OutcomeUnknownError(text, hint=_RETRY_HINT, **fields)
        kind = NotFoundError if status == 404 else DataverseError
        return kind(f"Dataverse refused {call.what} ({label}): {message}", hint=_HINTS.get(status, ""), **fields)

    def _json(self, response: requests.Response, what: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            snippet = " ".join(response.text.split())[:120]
            raise DataverseError(
                f"Dataverse answered {what.split('?')[0]} with something that is not JSON: {snippet}",
                status=response.status_code,
            ) from None

