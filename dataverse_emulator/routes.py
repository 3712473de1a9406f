"""URL routing under `/api/data/v9.2/`: service document, `$metadata`, `EntityDefinitions`, entity sets and
records, `WhoAmI`, and the actions and functions of `operations.py` (bound and unbound).

`Router.dispatch` turns one `ApiRequest` into an `ApiResponse` or raises `ServiceError`; it knows nothing of
sockets, authentication or limits, so `$batch` parts go through it too.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import entities, metadata
from .context import Context, Handler
from .errors import ServiceError, bad_request, not_found
from .prepass import parse_literal
from .schema import BY_SET_NAME, Entity
from .serialize import NS
from .wire import API_PREFIX, ApiRequest, ApiResponse, json_response

_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_.]*")
_OP_PREFIX = f"/{NS}."
ORG_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "dataverse-emulator/organization"))
BUSINESS_UNIT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "dataverse-emulator/businessunit"))


def resource_not_found(segment: str) -> ServiceError:
    return ServiceError(404, "0x80060888", f"Resource not found for the segment '{segment}'.")


def method_not_allowed(method: str) -> ServiceError:
    return ServiceError(405, "0x80060888", f"The requested resource does not support http method '{method}'.")


def split_target(target: str) -> tuple[str, str, list[tuple[str, str]]]:
    """`/api/data/v9.2/contacts(x)?$select=a` -> ("contacts(x)", "$select=a", [("$select", "a")])."""
    parts = urlsplit(target)
    path = parts.path
    if path.rstrip("/") == API_PREFIX.rstrip("/"):
        path = API_PREFIX
    if not path.startswith(API_PREFIX):
        raise resource_not_found(path.lstrip("/") or "/")
    params = parse_qsl(parts.query, keep_blank_values=True)
    return unquote(path[len(API_PREFIX):]), parts.query, params


def _closing_paren(text: str, start: int) -> int:
    """Index of the `)` matching the `(` at text[start], skipping quoted strings and nested brackets."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote and not (quote == "'" and text[i + 1 : i + 2] == "'"):
                quote = ""
            elif ch == quote:
                i += 1
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise bad_request(f"Unbalanced parentheses in '{text}'.")


def split_segment(rel: str) -> tuple[str, str | None, str]:
    """`contacts(id)/x` -> ("contacts", "id", "/x"); `WhoAmI()` -> ("WhoAmI", "", "")."""
    m = _NAME.match(rel)
    if m is None:
        raise resource_not_found(rel)
    name, i = m.group(0), m.end()
    if i < len(rel) and rel[i] == "(":
        end = _closing_paren(rel, i)
        return name, rel[i + 1 : end], rel[end + 1 :]
    return name, None, rel[i:]


def split_args(text: str) -> list[str]:
    """Top-level comma split of `A=@a,B='x,y',C={"k":[1,2]}`."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if cur or out:
        out.append("".join(cur))
    return [a.strip() for a in out if a.strip()]


def function_params(args: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    """Function parameters with aliases (`P=@a` and `?@a=...`) resolved and literals decoded."""
    aliases = {k: v for k, v in params if k.startswith("@")}
    out: dict[str, Any] = {}
    for arg in split_args(args):
        name, eq, value = arg.partition("=")
        if not eq or not name.strip():
            raise bad_request(f"Invalid function parameter '{arg}'; expected Name=value or Name=@alias.")
        value = value.strip()
        if value.startswith("@"):
            if value not in aliases:
                raise bad_request(f"The parameter alias '{value}' has no value in the query string.")
            value = aliases[value]
        out[name.strip()] = parse_literal(value)
    return out


def record_id(meta: Entity, key: str) -> str:
    try:
        return str(uuid.UUID(key.strip("{}")))
    except ValueError:
        raise bad_request(f"The key '{key}' of '{meta.set_name}' is not a GUID; alternate keys are not supported by "
                          "the emulator.") from None


class Router:
    """Routes requests to entity handlers, metadata documents and operations."""

    def __init__(self, actions: dict[str, Handler], functions: dict[str, Handler],
                 pause: Callable[[float], None] = time.sleep) -> None:
        self.actions = actions
        self.functions = functions
        self.pause = pause

    def dispatch(self, ctx: Context, req: ApiRequest, deferred: list[float] | None = None) -> ApiResponse:
        rel, raw_query, params = split_target(req.target)
        method = req.method.upper()
        if rel in ("", "$metadata"):
            if method != "GET":
                raise method_not_allowed(method)
            if rel == "":
                return json_response(200, metadata.service_document(ctx.api_url))
            body = metadata.csdl().encode("utf-8")
            return ApiResponse(200, {"Content-Type": "application/xml"}, body)
        name, key, rest = split_segment(rel)
        if name == "EntityDefinitions":
            if method != "GET":
                raise method_not_allowed(method)
            select = self._metadata_select(params)
            return json_response(200, metadata.entity_definitions(rel[len(name):], select, ctx.api_url))
        meta = BY_SET_NAME.get(name)
        if meta is not None:
            return self._entity(ctx, req, meta, key, rest, params, (rel, raw_query), deferred)
        if name in self.actions or name in self.functions or name == "WhoAmI":
            if rest:
                raise resource_not_found(rest.lstrip("/"))
            return self._operation(ctx, req, name, key, params, None, deferred)
        raise resource_not_found(name)

    @staticmethod
    def _metadata_select(params: list[tuple[str, str]]) -> list[str] | None:
        select = None
        for k, v in params:
            if k == "$select":
                select = [s.strip() for s in v.split(",") if s.strip()]
            elif k.startswith("$"):
                raise bad_request(f"The query parameter '{k}' is not supported on metadata by the emulator.")
        return select

    def _entity(self, ctx: Context, req: ApiRequest, meta: Entity, key: str | None, rest: str,
                params: list[tuple[str, str]], where: tuple[str, str], deferred: list[float] | None) -> ApiResponse:
        method = req.method.upper()
        if key is None:
            if rest:
                raise resource_not_found(rest.lstrip("/"))
            if method == "GET":
                return entities.query_collection(ctx, req, meta, params, *where)
            if method == "POST":
                return entities.create(ctx, req, meta, params)
            raise method_not_allowed(method)
        rid = record_id(meta, key)
        if rest.startswith(_OP_PREFIX):
            op_name, op_key, op_rest = split_segment(rest[len(_OP_PREFIX):])
            if op_rest:
                raise resource_not_found(op_rest.lstrip("/"))
            with ctx.store.lock:
                if ctx.store.get(meta.name, rid) is None:
                    raise not_found(meta.name, rid)
            bound = {"entity": meta.name, "id": rid}
            return self._operation(ctx, req, op_name, op_key, params, bound, deferred)
        if rest:
            nav = re.fullmatch(r"/([A-Za-z0-9_]+)/\$ref", rest)
            if nav is None or method != "DELETE":
                raise resource_not_found(rest.lstrip("/"))
            return entities.delete_reference(ctx, meta, rid, nav.group(1))
        if method == "GET":
            return entities.retrieve(ctx, req, meta, rid, params)
        if method == "PATCH":
            return entities.update(ctx, req, meta, rid, params)
        if method == "DELETE":
            return entities.delete(ctx, req, meta, rid)
        raise method_not_allowed(method)

    def _operation(self, ctx: Context, req: ApiRequest, name: str, key: str | None, params: list[tuple[str, str]],
                   bound: dict[str, str] | None, deferred: list[float] | None) -> ApiResponse:
        method = req.method.upper()
        if method == "POST" and name in self.actions:
            if key not in (None, ""):
                raise bad_request(f"Action '{name}' takes its parameters in the request body, not in the URL.")
            args = req.json_body(required=False)
            if not isinstance(args, dict):
                raise bad_request(f"The body of action '{name}' must be a JSON object of its parameters.")
            handler = self.actions[name]
        elif method == "GET" and (name in self.functions or name == "WhoAmI"):
            args = function_params(key or "", params)
            handler = self.functions.get(name) or _who_am_i
        else:
            if name in self.actions or name in self.functions or name == "WhoAmI":
                raise method_not_allowed(method)
            raise resource_not_found(f"{NS}.{name}")
        if bound is not None:
            args["@bound"] = bound
        if name == "Merge" and ctx.options.merge_ms > 0:
            seconds = ctx.options.merge_ms / 1000.0
            if deferred is not None:
                deferred.append(seconds)
            else:
                self.pause(seconds)
        with ctx.store.transaction():
            result = handler(ctx, args)
        if result is None:
            return ApiResponse(204)
        body = dict(result)
        body.setdefault("@odata.context", f"{ctx.api_url}$metadata#{NS}.{name}Response")
        return json_response(200, {"@odata.context": body.pop("@odata.context"), **body})


def _who_am_i(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"BusinessUnitId": BUSINESS_UNIT_ID, "UserId": ctx.caller_id, "OrganizationId": ORG_ID}


