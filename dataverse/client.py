"""The one Dataverse Web API client: session, headers, paging, retries, throttling, errors, metadata.

No other module speaks HTTP to Dataverse or looks at a status code. Retry rules (DESIGN.md section 3):
429 is retried for every method (a throttled request never ran) and pauses all threads; 401 refreshes
the token once; 5xx and dropped connections are retried only for idempotent requests, while an unsafe
request (POST Merge) that may have been processed raises OutcomeUnknownError instead of being re-sent.
"""

from __future__ import annotations

import json as jsonlib
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests

from dataverse.batch import BatchAnswer, BatchFormatError, batch_body, read_batch
from dataverse.environment import Environment, normalize_uri
from dataverse.metadata import AttributeMetadata, EntityMetadata
from dataverse.odata import odata_string, validate_entity_name, validate_guid
from dataverse.transport import (
    BearerAuth,
    ClientStats,
    NoAffinityCookies,
    ThrottleGate,
    error_body,
    error_text,
    never_sent,
    new_session,
    parse_retry_after,
    prefer,
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
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")
_MAX_URL = 32_000  # Dataverse refuses GET URLs over 32,768 characters
_RETRY_HINT = "Check in Dataverse whether it took effect before sending it again."
MAX_BATCH = 1000  # requests in one $batch (Microsoft's documented limit)
_TRANSIENT = frozenset({502, 503, 504})
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
    refreshes: int = 0
    throttles_at_refresh: int = 0


class DataverseClient:
    """A Web API client for one environment; share one instance between all worker threads."""

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
        self._metadata: dict[str, EntityMetadata] = {}
        self._tables: dict[str, tuple[str, str]] | None = None
        self._environment: Environment | None = None
        self._refused_token = ""  # "Bearer ..." Dataverse refused and the provider could not renew
        self._metadata_lock = threading.Lock()

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
        call = _Call(
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

    def get(self, path: str, params: Mapping[str, str] | None = None, *, annotations: bool = False) -> dict:
        """GET one JSON document (a record, a function result, a metadata definition)."""
        headers = {"Prefer": prefer(annotations, None)} if annotations else None
        return self._json(self.request("GET", path, params=params, headers=headers), f"GET {path}") or {}

    def get_all(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        page_size: int | None = None,
        annotations: bool = False,
    ) -> Iterator[dict]:
        """Yield every row of ``value`` across pages, following @odata.nextLink unchanged until absent."""
        headers = {"Prefer": prefer(annotations, page_size or self.settings.page_size)}
        url: str | None = path
        query = params
        while url:
            page = self._json(self.request("GET", url, params=query, headers=headers), f"GET {path}") or {}
            yield from page.get("value", [])
            url, query = page.get("@odata.nextLink"), None

    def post(self, path: str, json: Any = None, *, safe_to_retry: bool = False) -> dict | None:
        """POST an action or a create; the answer's JSON, or None on 204."""
        response = self.request("POST", path, json=json, safe_to_retry=safe_to_retry)
        if response.status_code == 204 or not response.content:
            return None
        return self._json(response, f"POST {path}")

    def create(self, entity_set: str, record: dict[str, Any]) -> str:
        """Create a record; its id (from the OData-EntityId header). Not retried blindly: a lost answer raises
        OutcomeUnknownError and the caller looks for the record before creating it again."""
        response = self.request("POST", entity_set, json=record, safe_to_retry=False)
        match = _ENTITY_ID.search(response.headers.get("OData-EntityId", ""))
        if match is None:
            raise DataverseError(f"Dataverse created a record in {entity_set} without saying its id.")
        return match.group(1).lower()

    def patch(self, path: str, json: Any, *, if_match: str = "*") -> None:
        """Update a record; ``If-Match: *`` (the default) refuses to create one that does not exist."""
        self.request("PATCH", path, json=json, headers={"If-Match": if_match} if if_match else None)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def get_many(
        self,
        entity_set: str,
        id_column: str,
        ids: Iterable[str],
        select: Iterable[str] = (),
        *,
        annotations: bool = False,
        chunk_size: int = 250,
    ) -> Iterator[dict]:
        """Records by id in bulk: ``$filter=Microsoft.Dynamics.CRM.In(...)``, a few hundred ids per request.

        Ids are validated and de-duplicated; ids that no longer exist are simply absent from the result.
        The chunk shrinks when a long $select would push the URL past Dataverse's 32,768-character limit.
        Up to `settings.read_workers` chunks are read at once (Microsoft's advice for throughput: parallel
        single requests); rows still come in chunk order, and a failed chunk raises here.
        """
        unique = list(dict.fromkeys(validate_guid(i) for i in ids))
        columns = list(dict.fromkeys([id_column, *select])) if select else []
        params = {"$select": ",".join(columns)} if columns else {}
        room = _MAX_URL - len(self.api_url) - len(entity_set) - len(params.get("$select", "")) - 200
        size = max(1, min(chunk_size, room // 40))  # one quoted GUID and a comma: 39 characters
        key = odata_string(id_column)

        def read(chunk: list[str]) -> list[dict]:
            values = ",".join(odata_string(i) for i in chunk)
            in_filter = f"Microsoft.Dynamics.CRM.In(PropertyName={key},PropertyValues=[{values}])"
            return list(self.get_all(entity_set, {**params, "$filter": in_filter}, annotations=annotations))

        chunks = [unique[start : start + size] for start in range(0, len(unique), size)]
        workers = max(1, min(self.settings.read_workers, len(chunks)))
        if workers == 1:
            for chunk in chunks:
                yield from read(chunk)
            return
        yield from _in_order(read, chunks, workers)

    def batch_get(
        self,
        calls: Sequence[tuple[str, Mapping[str, str] | None]],
        *,
        return_errors: bool = False,
    ) -> list[Any]:
        """GET each `(path, params)` inside one `$batch` and return each answer's JSON, in order.

        Sent with `Prefer: odata.continue-on-error`, so every part answers. The batch is one request against
        the service's request-count limit (the parts' execution time still counts). The whole batch is sent
        again when it, or any part, is throttled (429: every thread pauses for Retry-After, as in
        `request()`) or transiently failed (502/503/504, with backoff); the parts are GETs, so repeating
        them is safe. A part that failed otherwise raises the DataverseError a single GET would have raised
        (NotFoundError for 404), or with `return_errors` stands in the list in place of its answer.
        """
        if not calls:
            return []
        if len(calls) > MAX_BATCH:
            raise ValueError(f"a $batch holds at most {MAX_BATCH} requests, not {len(calls)}")
        urls = [self._url(path, params) for path, params in calls]
        body, content_type = batch_body(urls)
        call = _Call(method="POST", url=self.api_url + "$batch", short="$batch", safe=True,
                     what=f"GET {calls[0][0].split('(')[0]} (x{len(urls)} in a $batch)")
        headers = {"Content-Type": content_type, "Prefer": "odata.continue-on-error"}
        while True:
            response = self.request("POST", "$batch", data=body, headers=headers, expected=(200,), safe_to_retry=True)
            try:
                answers = read_batch(response.headers.get("Content-Type", ""), response.content)
            except BatchFormatError as exc:
                raise DataverseError(f"Dataverse answered {call.what} with a document that cannot be read: {exc}.",
                                     status=response.status_code) from None
            if len(answers) != len(urls):
                raise DataverseError(f"Dataverse answered {len(answers)} of the {len(urls)} requests in a $batch.",
                                     status=response.status_code, hint="Run the step again.")
            again = next((a for a in answers if a.status == 429 or a.status in _TRANSIENT), None)
            if again is None:
                break
            self._retry_batch(call, again, urls[answers.index(again)])
        return [self._part_result(url, answer, return_errors) for url, answer in zip(urls, answers, strict=True)]

    def entity(self, logical_name: str) -> EntityMetadata:
        """A table's metadata, fetched once per table and cached (thread-safe)."""
        name = validate_entity_name(logical_name)
        with self._metadata_lock:
            if name not in self._metadata:
                self._metadata[name] = self._fetch_entity(name)
            return self._metadata[name]

    def environment(self) -> Environment:
        """This environment's address and organization id (WhoAmI, asked once)."""
        with self._metadata_lock:
            if self._environment is None:
                answer = self.get("WhoAmI")
                self._environment = Environment(normalize_uri(self.environment_uri),
                                                str(answer.get("OrganizationId") or "").lower())
            return self._environment

    def table_names(self) -> dict[str, tuple[str, str]]:
        """Every table's entity set name and primary key (`task` -> (`tasks`, `activityid`)): one request,
        cached. Fetched before step 3 plans, so that planning itself asks Dataverse nothing."""
        with self._metadata_lock:
            if self._tables is None:
                rows = self.get_all("EntityDefinitions", {"$select": "LogicalName,EntitySetName,PrimaryIdAttribute"})
                self._tables = {str(r["LogicalName"]): (str(r["EntitySetName"]), str(r.get("PrimaryIdAttribute") or ""))
                                for r in rows if r.get("LogicalName") and r.get("EntitySetName")}
            return dict(self._tables)

    def entity_set_names(self) -> dict[str, str]:
        """Every table's entity set name (`account` -> `accounts`), for the lookups a merge writes."""
        return {name: names[0] for name, names in self.table_names().items()}

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> DataverseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------

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

    def _send(self, call: _Call, data: bytes | None, headers: dict[str, str]) -> requests.Response | None:
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

    def _after_transport_error(self, call: _Call, exc: Exception) -> float:
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
    def _may_refresh(call: _Call) -> bool:
        """Once per request; again (up to 3) only if a throttle wait since the last refresh may have
        outlived the new token."""
        return call.refreshes == 0 or (call.refreshes < 3 and call.throttles > call.throttles_at_refresh)

    def _handle_refusal(self, call: _Call, response: requests.Response) -> None:
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

    def _throttle_delay(self, call: _Call, response: requests.Response) -> float:
        call.throttles += 1
        retry_after = parse_retry_after(response)
        delay = self._backoff(call.throttles) if retry_after is None else self._cap(retry_after)
        if call.throttle_wait + delay > self.settings.max_throttle_wait:
            raise self._error(call, response)
        log.info("%s %s throttled: all requests pause for %.1f s", call.method, call.short, delay)
        return delay

    def _retry_batch(self, call: _Call, answer: BatchAnswer, url: str) -> None:
        """Wait before sending a batch again (a part was throttled or transiently failed), or raise."""
        retry_after = retry_after_seconds(answer.headers.get("retry-after", ""))
        if answer.status == 429:
            call.throttles += 1
            delay = self._backoff(call.throttles) if retry_after is None else self._cap(retry_after)
            if call.throttle_wait + delay > self.settings.max_throttle_wait:
                raise self._part_error(url, answer)
            call.throttle_wait += delay
            log.info("a part of %s was throttled: all requests pause for %.1f s", call.what, delay)
            self._gate.close_for(delay)
            self.stats.add(throttled=1, retries=1)
            return
        if call.retries >= self.settings.max_retries:
            raise self._part_error(url, answer)
        call.retries += 1
        self.stats.add(retries=1)
        time.sleep(self._backoff(call.retries) if retry_after is None else self._cap(retry_after))

    def _part_result(self, url: str, answer: BatchAnswer, return_errors: bool) -> Any:
        if answer.status < 400:
            try:
                return jsonlib.loads(answer.body) if answer.body.strip() else {}
            except ValueError:
                snippet = " ".join(answer.body.decode("utf-8", "replace").split())[:120]
                raise DataverseError(f"Dataverse answered a part of a $batch with something that is not JSON: "
                                     f"{snippet}", status=answer.status) from None
        error = self._part_error(url, answer)
        if return_errors:
            return error
        raise error

    def _part_error(self, url: str, answer: BatchAnswer) -> DataverseError:
        """The error a single GET of `url` would have raised for this answer."""
        short = url[len(self.api_url):] if url.startswith(self.api_url) else url
        call = _Call(method="GET", url=url, short=short[:500], what=f"GET {short.split('?')[0].split('(')[0]}",
                     safe=True)
        code, message = error_text(answer.body.decode("utf-8", "replace"))
        return self._make_error(call, answer.status, code, message, answer.headers)

    def _token_refused(self, call: _Call, sent: str, why: str = "") -> TokenRefusedError:
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

    def _error(self, call: _Call, response: requests.Response, *, unknown: bool = False) -> DataverseError:
        code, message = error_body(response)
        return self._make_error(call, response.status_code, code, message, response.headers, unknown=unknown)

    def _make_error(self, call: _Call, status: int, code: str, message: str, headers: Mapping[str, str], *,
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

    def _fetch_entity(self, name: str) -> EntityMetadata:
        key = f"EntityDefinitions(LogicalName={odata_string(name)})"
        try:
            row = self.get(
                key, {"$select": "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ObjectTypeCode"}
            )
        except NotFoundError as exc:
            raise NotFoundError(
                f"There is no table named '{name}' in this environment.",
                status=404,
                code=exc.code,
                request_id=exc.request_id,
                hint="Use the table's logical name (like contact), not its display name.",
            ) from None
        columns = "LogicalName,AttributeType,IsValidForUpdate,IsValidForRead,AttributeOf"
        rows = self.get(f"{key}/Attributes", {"$select": columns}).get("value", [])
        lookup_path = f"{key}/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata"
        targets = {
            r["LogicalName"]: tuple(r.get("Targets") or ())
            for r in self.get(lookup_path, {"$select": "LogicalName,Targets"}).get("value", [])
        }
        attributes = {
            r["LogicalName"]: AttributeMetadata(
                logical_name=r["LogicalName"],
                attribute_type=str(r.get("AttributeType") or ""),
                is_valid_for_update=bool(r.get("IsValidForUpdate")),
                is_valid_for_read=bool(r.get("IsValidForRead")),
                attribute_of=r.get("AttributeOf") or None,
                targets=targets.get(r["LogicalName"], ()),
            )
            for r in rows
        }
        return EntityMetadata(
            logical_name=row.get("LogicalName") or name,
            entity_set_name=row["EntitySetName"],
            primary_id=row["PrimaryIdAttribute"],
            primary_name=row.get("PrimaryNameAttribute") or "",
            object_type_code=row.get("ObjectTypeCode"),
            attributes=MappingProxyType(attributes),
        )


def _in_order(read: Callable[[list[str]], list[dict]], chunks: list[list[str]], workers: int) -> Iterator[dict]:
    """`read` every chunk on `workers` threads, at most twice that many in flight; rows in chunk order.
    Whatever is still queued is cancelled when the caller stops early or a chunk fails."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dataverse-read")
    try:
        queued = iter(chunks)
        pending = deque(pool.submit(read, chunk) for chunk in islice(queued, 2 * workers))
        while pending:
            rows = pending.popleft().result()
            following = next(queued, None)
            if following is not None:
                pending.append(pool.submit(read, following))
            yield from rows
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
