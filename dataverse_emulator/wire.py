"""Requests and responses as plain values, so the same routing serves sockets and `$batch` parts alike."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from .errors import ServiceError, bad_request

JSON_TYPE = "application/json; odata.metadata=minimal"
API_PREFIX = "/api/data/v9.2/"


@dataclass
class ApiRequest:
    method: str
    target: str                      # path and query as sent, e.g. /api/data/v9.2/contacts?$top=1
    headers: dict[str, str]          # lower-case names
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def json_body(self, *, required: bool = True) -> Any:
        if not self.body.strip():
            if required:
                raise bad_request("The request body is empty; a JSON object was expected.")
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise bad_request(f"Error parsing the request body as JSON: {exc}.") from None


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    cookies: list[str] = field(default_factory=list)  # Set-Cookie values (a header that may repeat)

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Unknown"


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> ApiResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return ApiResponse(status, {"Content-Type": JSON_TYPE, **(headers or {})}, body)


def error_response(exc: ServiceError, wants: Callable[[str], bool] | None = None) -> ApiResponse:
    """The error as JSON; with `wants` (the request's `odata.include-annotations`), the
    `@Microsoft.PowerApps.CDS.*` details it asked for. A 401 has an empty body, as the service sends it."""
    if exc.status == 401:
        return ApiResponse(401, dict(exc.headers))
    body = exc.body()
    if wants is not None:
        body["error"].update({k: v for k, v in exc.details().items() if wants(k)})
    return json_response(exc.status, body, dict(exc.headers))


def no_content(headers: dict[str, str] | None = None) -> ApiResponse:
    return ApiResponse(204, dict(headers or {}))
