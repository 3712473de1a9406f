"""URL routing under `/api/data/v9.2/`: service document, `$metadata`, `EntityDefinitions`, entity sets and
records (by id or alternate key), navigation paths, `WhoAmI`, and the actions and functions of
`operations.py` (unbound, bound to a record, or bound to an entity set).

`Router.dispatch` turns one `ApiRequest` into an `ApiResponse` or raises `ServiceError`; it knows nothing of
sockets, authentication or limits, so `$batch` parts go through it too. Every request's headers are checked
first (prefer.check_headers); query parameters a resource does not take are a 400 naming them.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

from . import entities, keys, metadata, navigation, writes
from .context import Context, Handler
from .errors import bad_request, not_found
from .operations import NOT_SERVED
from .options import ORG_ID
from .prefer import check_headers
from .schema import BY_SET_NAME, Entity
from .serialize import NS
from .urlparts import function_params, method_not_allowed, resource_not_found, split_segment, split_target
from .wire import ApiRequest, ApiResponse, json_response

_OP_PREFIX = f"/{NS}."

BUSINESS_UNIT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "dataverse-emulator/businessunit"))
__all__ = ["BUSINESS_UNIT_ID", "ORG_ID", "Router", "method_not_allowed", "resource_not_found"]


def record_key(ctx: Context, meta: Entity, key: str) -> tuple[str | None, dict[str, Any] | None]:
    """(record id, alternate key values): a GUID is the id; `col='x'` is looked up by alternate key (the id is
    None when nothing matches)."""
    try:
        return str(uuid.UUID(key.strip("{}"))), None
    except ValueError:
        pass
    values = keys.parse_key_segment(meta, key)
    with ctx.store.lock:
        return keys.find_by_key(ctx.store, meta, values), values


class Router:
    """Routes requests to entity handlers, metadata documents and operations."""

    def __init__(self, actions: dict[str, Handler], functions: dict[str, Handler],
                 pause: Callable[[float], None] = time.sleep, collection_bound: frozenset[str] = frozenset()) -> None:
        self.actions = actions
        self.functions = functions
        self.pause = pause
        self.collection_bound = collection_bound

    def dispatch(self, ctx: Context, req: ApiRequest, deferred: list[float] | None = None) -> ApiResponse:
        check_headers(req)
        ctx = dataclasses.replace(ctx, request=req)
        rel, raw_query, params = split_target(req.target)
        method = req.method.upper()
        if rel in ("", "$metadata"):
            if method != "GET":
                raise method_not_allowed(method)
            if params:
                raise bad_request(f"The query parameter '{params[0][0]}' is not supported on the service documents "
                                  "by the emulator.")
            if rel == "":
                return json_response(200, metadata.service_document(ctx.api_url))
            return ApiResponse(200, {"Content-Type": "application/xml"}, metadata.csdl().encode("utf-8"))
        name, key, rest = split_segment(rel)
        if name == "EntityDefinitions":
            return metadata.handle(ctx, req, rel[len(name):], params)
        if name == "RelationshipDefinitions":
            return metadata.handle_relationships(ctx, req, rel[len(name):], params)
        meta = BY_SET_NAME.get(name)
        if meta is not None:
            return self._entity(ctx, req, meta, key, rest, params, (rel, raw_query), deferred)
        if name in self.actions or name in self.functions or name == "WhoAmI":
            if rest:
                raise resource_not_found(rest.lstrip("/"))
            return self._operation(ctx, req, name, key, params, None, deferred)
        _not_served(name.removeprefix(f"{NS}."))
        raise resource_not_found(name)

    def _entity(self, ctx: Context, req: ApiRequest, meta: Entity, key: str | None, rest: str,
                params: list[tuple[str, str]], where: tuple[str, str], deferred: list[float] | None) -> ApiResponse:
        method = req.method.upper()
        if key is None:
            if rest.startswith(_OP_PREFIX):
                op_name, op_key, op_rest = split_segment(rest[len(_OP_PREFIX):])
                _not_served(op_name)
                if op_rest or op_name not in self.collection_bound:
                    raise resource_not_found(rest.lstrip("/"))
                bound = {"entity": meta.name, "collection": True}
                return self._operation(ctx, req, op_name, op_key, params, bound, deferred)
            if rest:
                raise resource_not_found(rest.lstrip("/"))
            if method == "GET":
                return entities.query_collection(ctx, req, meta, params, *where)
            if method == "POST":
                return writes.create(ctx, req, meta, params)
            raise method_not_allowed(method)
        rid, key_values = record_key(ctx, meta, key)
        if rid is None and not (method == "PATCH" and not rest):
            raise keys.not_found_by_key(meta.name)
        if rest.startswith(_OP_PREFIX):
            op_name, op_key, op_rest = split_segment(rest[len(_OP_PREFIX):])
            if op_rest:
                raise resource_not_found(op_rest.lstrip("/"))
            with ctx.store.lock:
                if ctx.store.get(meta.name, rid) is None:  # type: ignore[arg-type]
                    raise not_found(meta.name, rid)  # type: ignore[arg-type]
            bound = {"entity": meta.name, "id": rid}
            return self._operation(ctx, req, op_name, op_key, params, bound, deferred)  # type: ignore[arg-type]
        if rest:
            return navigation.handle(ctx, req, meta, rid, rest, params, where)  # type: ignore[arg-type]
        if method == "GET":
            return entities.retrieve(ctx, req, meta, rid, params)  # type: ignore[arg-type]
        if method == "PATCH":
            return writes.update(ctx, req, meta, rid, params, key_values)
        if method == "DELETE":
            if params:
                raise bad_request(f"The query parameter '{params[0][0]}' is not supported on DELETE.")
            return writes.delete(ctx, req, meta, rid)  # type: ignore[arg-type]
        raise method_not_allowed(method)

    def _operation(self, ctx: Context, req: ApiRequest, name: str, key: str | None, params: list[tuple[str, str]],
                   bound: dict[str, Any] | None, deferred: list[float] | None) -> ApiResponse:
        method = req.method.upper()
        if method == "POST" and name in self.actions:
            if key not in (None, ""):
                raise bad_request(f"Action '{name}' takes its parameters in the request body, not in the URL.")
            if params:
                raise bad_request(f"The query parameter '{params[0][0]}' is not supported on action '{name}'.")
            args = req.json_body(required=False)
            if not isinstance(args, dict):
                raise bad_request(f"The body of action '{name}' must be a JSON object of its parameters.")
            handler = self.actions[name]
        elif method == "GET" and (name in self.functions or name == "WhoAmI"):
            stray = [k for k, _ in params if not k.startswith("@")]
            if stray:
                raise bad_request(f"The query parameter '{stray[0]}' is not supported on function '{name}' by the "
                                  "emulator.")
            args = function_params(key or "", params)
            handler = self.functions.get(name) or _who_am_i
        else:
            if name in self.actions or name in self.functions or name == "WhoAmI":
                raise method_not_allowed(method)
            _not_served(name)
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


def _not_served(name: str) -> None:
    if name in NOT_SERVED:
        raise bad_request(f"The {name} message is not supported by the Dataverse emulator.")


def _who_am_i(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"BusinessUnitId": BUSINESS_UNIT_ID, "UserId": ctx.caller_id, "OrganizationId": ctx.options.organization_id}
