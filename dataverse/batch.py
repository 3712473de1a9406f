"""The `$batch` wire format: the multipart body to send and the answers to read back.

Pure (no I/O). Microsoft's format (execute-batch-operations-using-web-api.md, OData 4.0 section 11.7):
each request is a part with `Content-Type: application/http` and `Content-Transfer-Encoding: binary`,
holding a request line and headers; the answer is `multipart/mixed` with one part per request, in order,
each holding a status line, headers and a body. GET requests cannot go in change sets (`batch_body`).
Writes go one per change set (`changeset_body`): a change set is one transaction, so a refused request
undoes nothing but itself. A change set that succeeded is answered by a nested `multipart/mixed` holding its
answers; one that failed by its failing request's answer alone, as a plain part (`read_batch` gives each
change set's one answer either way).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.I)
_STATUS_LINE = re.compile(rb"HTTP/\d\.\d\s+(\d{3})")


class BatchFormatError(ValueError):
    """The answer to a $batch is not the multipart document it should be."""


@dataclass(frozen=True)
class BatchAnswer:
    """One part of a $batch answer: the inner response's status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def batch_body(urls: Sequence[str], headers: Mapping[str, str] | None = None) -> tuple[bytes, str]:
    """The multipart body for GET `urls` (absolute URLs) and its Content-Type header value."""
    boundary = f"batch_{uuid.uuid4()}"
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    parts = [f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
             f"GET {url} HTTP/1.1\r\nAccept: application/json\r\n{extra}\r\n" for url in urls]
    body = "".join(parts) + f"--{boundary}--\r\n"
    return body.encode("utf-8"), f"multipart/mixed; boundary={boundary}"


def changeset_body(requests: Sequence[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """The multipart body holding each `(method, absolute URL, JSON body)` in a change set of its own, and its
    Content-Type header value. Each request's Content-ID is its position, from 1."""
    boundary = f"batch_{uuid.uuid4()}"
    parts = []
    for n, (method, url, data) in enumerate(requests, start=1):
        changeset = f"changeset_{uuid.uuid4()}"
        parts.append(
            f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {n}\r\n\r\n{method} {url} HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n"
            f"Accept: application/json\r\n\r\n".encode() + data + f"\r\n--{changeset}--\r\n".encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/mixed; boundary={boundary}"


def read_batch(content_type: str, body: bytes, *, changesets: bool = False) -> list[BatchAnswer]:
    """The inner responses of a $batch answer, in order: one per request, or with `changesets` one per change
    set of one request (its answer, whether it came nested or alone). BatchFormatError when it cannot be read."""
    pieces = _pieces(content_type, body)
    answers = []
    for piece in pieces:
        mime, rest = _split_head(piece.lstrip(b"\r\n"))
        if not mime.get("content-type", "").lower().startswith("multipart/"):
            answers.append(_answer(rest))
        elif not changesets:
            raise BatchFormatError("a change set in the answer to a batch of GET requests")
        else:
            inner = _pieces(mime["content-type"], rest)
            if len(inner) != 1:
                raise BatchFormatError(f"a change set answered with {len(inner)} parts, not 1")
            answers.append(_answer(_split_head(inner[0].lstrip(b"\r\n"))[1]))
    return answers


def _pieces(content_type: str, body: bytes) -> list[bytes]:
    """The parts of a multipart/mixed document (each with its MIME headers)."""
    match = _BOUNDARY.search(content_type or "")
    if not (content_type or "").lower().startswith("multipart/mixed") or match is None:
        raise BatchFormatError(f"the answer is {content_type or 'untyped'}, not multipart/mixed")
    delimiter = b"--" + match.group(1).encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 2 or not pieces[-1].startswith(b"--"):
        raise BatchFormatError("the answer ends before its closing boundary")
    return pieces[1:-1]


def _answer(http: bytes) -> BatchAnswer:
    """One part's HTTP response (status line, headers, blank, body), after its MIME headers."""
    head, body = _split_block(http.lstrip(b"\r\n"))
    lines = head.split(b"\n")
    status = _STATUS_LINE.match(lines[0].strip())
    if status is None:
        raise BatchFormatError(f"a part without a status line: {lines[0][:60]!r}")
    headers = _header_lines(lines[1:])
    if body.endswith(b"\r\n"):   # the line break before the next boundary belongs to the boundary
        body = body[:-2]
    elif body.endswith(b"\n"):
        body = body[:-1]
    return BatchAnswer(int(status.group(1)), headers, body)


def _split_head(data: bytes) -> tuple[dict[str, str], bytes]:
    head, rest = _split_block(data)
    return _header_lines(head.split(b"\n")), rest


def _split_block(data: bytes) -> tuple[bytes, bytes]:
    """(what comes before the first blank line, what follows it)."""
    match = re.search(rb"\r?\n\r?\n", data)
    if match is None:
        return data, b""
    return data[: match.start()], data[match.end():]


def _header_lines(lines: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in lines:
        name, colon, value = raw.decode("latin-1").partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers
