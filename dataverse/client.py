"""The one Dataverse Web API client: reads (one, all pages, many by id, in `$batch`), writes, and what it
learns about the environment (its identity, its tables). The request engine with its retry rules is
requester.py; no other module speaks HTTP to Dataverse or looks at a status code.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dataverse.batch import BatchAnswer, BatchFormatError, batch_body, changeset_body, read_batch
from dataverse.environment import Environment, normalize_uri
from dataverse.metadata import AttributeMetadata, EntityMetadata
from dataverse.odata import odata_string, validate_entity_name, validate_guid
from dataverse.requester import API_PATH, DEFAULT_SETTINGS, Call, ClientSettings, Requester
from dataverse.transport import error_text, prefer, retry_after_seconds
from errors import DataverseError, NotFoundError, OutcomeUnknownError

if TYPE_CHECKING:
    from auth import TokenProvider

log = logging.getLogger(__name__)

_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")
_MAX_URL = 32_000  # Dataverse refuses GET URLs over 32,768 characters
MAX_BATCH = 1000  # requests in one $batch (Microsoft's documented limit)
_TRANSIENT = frozenset({502, 503, 504})
# a $batch refused as a whole (malformed, too large) is read here too; 401 and 429 stay with request()'s retries
_BATCH_ANSWERS = (200, *(s for s in range(400, 500) if s not in (401, 429)))

__all__ = ["API_PATH", "DEFAULT_SETTINGS", "ClientSettings", "DataverseClient"]


class DataverseClient(Requester):
    """A Web API client for one environment; share one instance between all worker threads."""

    def __init__(self, environment_uri: str, token_provider: TokenProvider, settings: ClientSettings = DEFAULT_SETTINGS,
                 **kw: Any) -> None:
        super().__init__(environment_uri, token_provider, settings, **kw)
        self._metadata: dict[str, EntityMetadata] = {}
        self._tables: dict[str, tuple[str, str]] | None = None
        self._environment: Environment | None = None
        self._metadata_lock = threading.Lock()

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
        call = Call(method="POST", url=self.api_url + "$batch", short="$batch", safe=True,
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

    def batch_post(self, path: str, bodies: Sequence[Any]) -> list[Any]:
        """POST `path` once per body inside one `$batch`, each in a change set of its own (a change set is one
        transaction: a refused request undoes no other), with `Prefer: odata.continue-on-error` so that every
        change set answers. The batch counts once against the request-count limit; its parts' server time all
        counts. Returns, per body, the answer's JSON (None for 204) or the DataverseError a single POST would
        have raised: OutcomeUnknownError for a 5xx (it may have run) or a change set the answer leaves out.

        Never sent again blindly (issue 16): a 429 on the batch (none of it ran) is waited out and the batch
        sent again, as `request()` does; parts answered 429 (they did not run) go again in a batch of their
        own. A batch whose answer is lost (dropped, timed out, 5xx, unreadable) raises OutcomeUnknownError:
        which parts ran is unknown, and the caller asks Dataverse about each."""
        if len(bodies) > MAX_BATCH:
            raise ValueError(f"a $batch holds at most {MAX_BATCH} requests, not {len(bodies)}")
        url = self._url(path, None)
        call = Call(method="POST", url=url, short=path, what=f"POST {path}", safe=False)
        results: list[Any] = [None] * len(bodies)
        todo = list(range(len(bodies)))
        while todo:
            data, content_type = changeset_body(
                [("POST", url, jsonlib.dumps(bodies[i], ensure_ascii=False).encode("utf-8")) for i in todo])
            response = self.request("POST", "$batch", data=data, expected=_BATCH_ANSWERS, safe_to_retry=False,
                                    headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"})
            answers = self._changeset_answers(call, response, len(todo))
            throttled = [(i, a) for i, a in zip(todo, answers, strict=True) if isinstance(a, BatchAnswer)
                         and a.status == 429]
            for i, answer in zip(todo, answers, strict=True):
                results[i] = answer if not isinstance(answer, BatchAnswer) else self._post_result(call, answer)
            todo = [i for i, _ in throttled]
            if throttled:
                self._retry_batch(call, throttled[0][1], url, "POST")
        return results

    def _changeset_answers(self, call: Call, response: Any, count: int) -> list[BatchAnswer | DataverseError]:
        """Each change set's answer, or the error that stands for it."""
        if response.status_code != 200 and not response.headers.get("Content-Type", "").startswith("multipart/"):
            refused = self._error(call, response)  # the batch was refused as a whole: none of it ran
            return [refused] * count
        try:
            answers: list[BatchAnswer | DataverseError] = list(
                read_batch(response.headers.get("Content-Type", ""), response.content, changesets=True))
        except BatchFormatError as exc:
            raise OutcomeUnknownError(f"Dataverse answered {count} x {call.what} in a $batch with a document that "
                                      f"cannot be read ({exc}): the outcome is unknown.", status=200) from None
        if len(answers) > count:
            raise OutcomeUnknownError(f"Dataverse answered {len(answers)} change sets of the {count} in a $batch: "
                                      "the outcome is unknown.", status=200)
        missing = OutcomeUnknownError(f"Dataverse's answer to a $batch of {count} x {call.what} stops before this "
                                      "one: its outcome is unknown.", status=response.status_code)
        return answers + [missing] * (count - len(answers))

    def _post_result(self, call: Call, answer: BatchAnswer) -> Any:
        """A change set's answer: its JSON (None when empty), or the error a single POST would have raised."""
        if answer.status < 400:
            try:
                return jsonlib.loads(answer.body) if answer.body.strip() else None
            except ValueError:
                return None   # it ran; an unreadable body does not undo that
        code, message = error_text(answer.body.decode("utf-8", "replace"))
        return self._make_error(call, answer.status, code, message, answer.headers, unknown=answer.status >= 500)

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

    def _retry_batch(self, call: Call, answer: BatchAnswer, url: str, method: str = "GET") -> None:
        """Wait before sending a batch again (a part was throttled or transiently failed), or raise."""
        retry_after = retry_after_seconds(answer.headers.get("retry-after", ""))
        if answer.status == 429:
            call.throttles += 1
            delay = self._backoff(call.throttles) if retry_after is None else self._cap(retry_after)
            if call.throttle_wait + delay > self.settings.max_throttle_wait:
                raise self._part_error(url, answer, method)
            call.throttle_wait += delay
            log.info("a part of %s was throttled: all requests pause for %.1f s", call.what, delay)
            self._gate.close_for(delay)
            self.stats.add(throttled=1, retries=1)
            self.stats.note_throttle(error_text(answer.body.decode("utf-8", "replace"))[0])
            return
        if call.retries >= self.settings.max_retries:
            raise self._part_error(url, answer, method)
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

    def _part_error(self, url: str, answer: BatchAnswer, method: str = "GET") -> DataverseError:
        """The error a single request (a GET) of `url` would have raised for this answer."""
        short = url[len(self.api_url):] if url.startswith(self.api_url) else url
        call = Call(method=method, url=url, short=short[:500], what=f"{method} {short.split('?')[0].split('(')[0]}",
                     safe=method == "GET")
        code, message = error_text(answer.body.decode("utf-8", "replace"))
        return self._make_error(call, answer.status, code, message, answer.headers)

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
