"""`POST $batch`: multipart/mixed requests, change sets that succeed or fail together, and the multipart answer.

Each part is a full HTTP request (`application/http`, binary). A change set (a nested multipart) runs inside
`store.transaction()`, so one failing request undoes the others; `Content-ID` values can be referenced as `$n`
in later URLs and `@odata.bind` values of the same change set. Without `Prefer: odata.continue-on-error` the
batch stops at the first failure and the outer status is that failure's. As in Dataverse, the batch counts as one
request against the request-count limit while its parts' execution time all counts (the outer request holds the
limiter ticket). Merge execution time inside a change set is slept after the transaction, off store.lock.
Parts outside change sets may be any GET: queries, records, and function calls with parameter aliases
(`RetrieveDuplicates(BusinessEntity=@b,...)?@b=...`), routed exactly as outside a batch. At most 1000 requests,
change set parts included; more is refused with the texts Dataverse answers.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import ServiceError, bad_request
from .prefer import Annotations, check_headers, parse_prefer
from .wire import API_PREFIX, ApiRequest, ApiResponse, error_response, json_response

if TYPE_CHECKING:
    from .server import Emulator

log = logging.getLogger(__name__)
MAX_REQUESTS = 1000
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.I)
_REF = re.compile(r"^\$(\d+)")


@dataclass
class _Part:
    headers: dict[str, str]
    request: ApiRequest | None = None           # an application/http part
    changeset: list[_Part] = field(default_factory=list)  # a change set's parts


class _ChangeSetFailed(Exception):
    def __init__(self, response: ApiResponse, content_id: str) -> None:
        super().__init__("change set failed")
        self.response, self.content_id = response, content_id


def is_batch(req: ApiRequest) -> bool:
    return req.target.split("?", 1)[0].rstrip("/") == API_PREFIX + "$batch"


def _boundary(content_type: str) -> str:
    m = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/mixed") or m is None:
        raise bad_request("A $batch request needs 'Content-Type: multipart/mixed; boundary=...'.")
    return m.group(1)


def _split(text: str, boundary: str) -> list[str]:
    delimiter = "--" + boundary
    pieces = re.split(r"(?:^|\r?\n)" + re.escape(delimiter) + r"(?=--|[ \t]*\r?\n|[ \t]*$)", text)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith("--"):
            break
        parts.append(re.sub(r"^[ \t]*\r?\n", "", piece, count=1))
    return parts


def _headers_and_rest(text: str) -> tuple[dict[str, str], str]:
    """Split `Name: value` lines from what follows the first blank line."""
    if text.startswith(("\r\n", "\n")):
        return {}, text.split("\n", 1)[1]
    m = re.search(r"\r?\n\r?\n", text)
    head, rest = (text, "") if m is None else (text[: m.start()], text[m.end():])
    headers = {}
    for line in head.splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _parse_parts(text: str, boundary: str, nested: bool = False) -> list[_Part]:
    parts: list[_Part] = []
    for raw in _split(text, boundary):
        headers, rest = _headers_and_rest(raw)
        ctype = headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            if nested:
                raise bad_request("Change sets cannot be nested.")
            parts.append(_Part(headers, changeset=_parse_parts(rest, _boundary(ctype), nested=True)))
        elif ctype.lower().startswith("application/http"):
            parts.append(_Part(headers, request=_parse_http(rest)))
        else:
            raise bad_request(f"Unsupported batch part Content-Type '{ctype}'; expected application/http.")
    return parts


def _parse_http(text: str) -> ApiRequest:
    line, _, remainder = text.lstrip("\r\n").partition("\n")
    words = line.strip().split(" ")
    if len(words) < 2:
        raise bad_request(f"Invalid request line in $batch part: '{line.strip()}'.")
    has_version = len(words) > 2 and words[-1].upper().startswith("HTTP/")
    url = " ".join(words[1:-1] if has_version else words[1:])
    headers, body = _headers_and_rest(remainder)
    return ApiRequest(words[0].upper(), _target(url), headers, body.rstrip("\r\n").encode("utf-8"))


def _target(url: str) -> str:
    """Absolute URL, absolute path or a path relative to the service root -> the absolute path and query."""
    if url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        return parts.path + ("?" + parts.query if parts.query else "")
    if url.startswith("/") or url.startswith("$"):
        return url
    return API_PREFIX + url


def _count(parts: list[_Part]) -> int:
    return sum(len(p.changeset) if p.request is None else 1 for p in parts)


def _check_size(parts: list[_Part]) -> None:
    """At most 1000 requests, change set parts included (the texts are those Dataverse answered)."""
    if any(p.request is None and len(p.changeset) > MAX_REQUESTS for p in parts):
        raise bad_request(f"The current change set contains too many operations. A maximum number of "
                          f"'{MAX_REQUESTS}' operations are allowed in a change set.")
    if _count(parts) > MAX_REQUESTS:
        raise bad_request(f"The current batch message contains too many parts. Only batch messages with a maximum "
                          f"number of '{MAX_REQUESTS}' query operations, including changeset operations, are "
                          "allowed.")


def handle_batch(app: Emulator, req: ApiRequest, caller: str) -> ApiResponse:
    if req.method.upper() != "POST":
        raise ServiceError(405, "0x80060888", "$batch only accepts POST.")
    check_headers(req)
    if urlsplit(req.target).query:
        raise bad_request("$batch takes no query parameters (emulator).")
    boundary = _boundary(req.header("content-type"))
    parts = _parse_parts(req.body.decode("utf-8", errors="replace"), boundary)
    _check_size(parts)
    continue_on_error = "odata.continue-on-error" in parse_prefer(req.header("prefer"))
    out_boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[str] = []
    status = 200
    for part in parts:
        if part.request is not None:
            resp = _run_one(app, part.request, caller, None)
            chunks.append(_http_part(out_boundary, resp, part.headers.get("content-id")))
            failed = resp.status >= 400
        else:
            text, failed, resp = _run_changeset(app, part, caller)
            chunks.append(f"--{out_boundary}\r\n{text}")
        if failed and not continue_on_error:
            status = resp.status
            break
    body = "".join(chunks) + f"--{out_boundary}--\r\n"
    headers = {"Content-Type": f"multipart/mixed; boundary={out_boundary}"}
    if continue_on_error:
        headers["Preference-Applied"] = "odata.continue-on-error"
    return ApiResponse(status, headers, body.encode("utf-8"))


def _run_one(app: Emulator, inner: ApiRequest, caller: str, deferred: list[float] | None) -> ApiResponse:
    try:
        return app.router.dispatch(app.context(caller), inner, deferred)
    except ServiceError as exc:
        return error_response(exc, Annotations.from_prefs(parse_prefer(inner.header("prefer"))).wants)
    except Exception as exc:  # noqa: BLE001 - one part's crash is that part's 500
        log.exception("unexpected error in $batch part %s %s", inner.method, inner.target)
        return json_response(500, {"error": {"code": "0x80040216", "message": f"{type(exc).__name__}: {exc}"}})


def _run_changeset(app: Emulator, part: _Part, caller: str) -> tuple[str, bool, ApiResponse]:
    """Run a change set atomically; answer its parts, or only the failing one."""
    boundary = f"changesetresponse_{uuid.uuid4()}"
    deferred: list[float] = []
    done: list[tuple[ApiResponse, str | None]] = []
    ids: dict[str, str] = {}
    try:
        with app.store.transaction():
            for sub in part.changeset:
                inner = _resolve_refs(sub.request, ids)
                if inner.method.upper() == "GET":
                    raise _ChangeSetFailed(error_response(bad_request("GET requests are not allowed inside a "
                                                                      "change set.")), "")
                resp = _run_one(app, inner, caller, deferred)
                cid = sub.headers.get("content-id")
                if resp.status >= 400:
                    raise _ChangeSetFailed(resp, cid or "")
                if cid and "OData-EntityId" in resp.headers:
                    ids[cid] = resp.headers["OData-EntityId"]
                done.append((resp, cid))
    except _ChangeSetFailed as failed:
        _sleep(deferred)
        return _http_part_body(failed.response, failed.content_id or None), True, failed.response
    _sleep(deferred)
    text = f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n"
    text += "".join(_http_part(boundary, resp, cid) for resp, cid in done) + f"--{boundary}--\r\n"
    return text, False, ApiResponse(200)


def _sleep(deferred: list[float]) -> None:
    if deferred:
        time.sleep(sum(deferred))


def _resolve_refs(inner: ApiRequest | None, ids: dict[str, str]) -> ApiRequest:
    """Replace `$n` (a Content-ID of this change set) in the URL and in `@odata.bind` values."""
    if inner is None:
        raise bad_request("A change set may only contain application/http requests.")

    def entity_path(cid: str) -> str:
        if cid not in ids:
            raise bad_request(f"Content-ID Reference: '${cid}' does not exist in the batch context.")
        return urlsplit(ids[cid]).path

    path = inner.target[len(API_PREFIX):] if inner.target.startswith(API_PREFIX) else inner.target
    m = _REF.match(path)
    target = entity_path(m.group(1)) + path[m.end():] if m else inner.target
    body = inner.body
    if b'"$' in body:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key, value in data.items():
                if key.endswith("@odata.bind") and isinstance(value, str) and (r := _REF.fullmatch(value)):
                    data[key] = entity_path(r.group(1))
            body = json.dumps(data).encode("utf-8")
    return ApiRequest(inner.method, target, inner.headers, body)


def _http_part_body(resp: ApiResponse, content_id: str | None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {resp.status} {resp.reason}"]
    lines += [f"{k}: {v}" for k, v in resp.headers.items()]
    if "OData-Version" not in resp.headers:
        lines.append("OData-Version: 4.0")
    lines += ["", resp.body.decode("utf-8", errors="replace")]
    return "\r\n".join(lines) + "\r\n"


def _http_part(boundary: str, resp: ApiResponse, content_id: str | None) -> str:
    return f"--{boundary}\r\n" + _http_part_body(resp, content_id)
