"""`CreateMultiple` and `UpdateMultiple`, bound to an entity set (`POST contacts/Microsoft.Dynamics.CRM.CreateMultiple`
with `{"Targets": [...]}`), as Microsoft's SDK sends its bulk operations (bulk-operations.md).

Each target is an entity object whose `@odata.type`, when given, must name the set's table; UpdateMultiple
targets carry their primary key. All targets succeed or none does (the router runs operations in one
transaction). CreateMultiple answers `CreateMultipleResponse` with the new `Ids` in order; UpdateMultiple
answers 204. Each record goes through the same checks as a single create or update (writes.py), including
`MSCRM.SuppressDuplicateDetection`.
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .errors import bad_request, not_found
from .schema import SCHEMA, Entity
from .writes import apply_update, insert_record

MAX_TARGETS = 1000  # unverified: Microsoft recommends batches well below this; the emulator caps here


def _targets(ctx: Context, params: dict[str, Any], action: str) -> tuple[Entity, list[dict[str, Any]]]:
    bound = params.get("@bound") or {}
    if not bound.get("collection"):
        raise bad_request(f"{action} is bound to an entity set: POST <entity set>/Microsoft.Dynamics.CRM.{action}.")
    meta = SCHEMA[bound["entity"]]
    targets = params.get("Targets")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, dict) for t in targets):
        raise bad_request(f"The Targets parameter of {action} must be a non-empty list of {meta.name} records.",
                          "0x80040203")
    if len(targets) > MAX_TARGETS:
        raise bad_request(f"{action} takes at most {MAX_TARGETS} targets in the emulator ({len(targets)} sent).")
    for target in targets:
        kind = str(target.get("@odata.type") or f"Microsoft.Dynamics.CRM.{meta.name}").lstrip("#")
        if kind != f"Microsoft.Dynamics.CRM.{meta.name}":
            raise bad_request(f"Every target of {action} on {meta.set_name} must be a {meta.name} ('{kind}' found).",
                              "0x80040203")
    return meta, targets


def create_multiple(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    meta, targets = _targets(ctx, params, "CreateMultiple")
    with ctx.store.lock:
        ids = [insert_record(ctx, ctx.request, meta, t) for t in targets]  # type: ignore[arg-type]
    return {"@odata.context": f"{ctx.api_url}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse", "Ids": ids}


def update_multiple(ctx: Context, params: dict[str, Any]) -> None:
    meta, targets = _targets(ctx, params, "UpdateMultiple")
    with ctx.store.lock:
        for target in targets:
            rid = str(target.get(meta.primary_id) or "").strip("{}").lower()
            if not rid:
                raise bad_request(f"Every target of UpdateMultiple needs its {meta.primary_id}.", "0x80040203")
            if ctx.store.get(meta.name, rid) is None:
                raise not_found(meta.name, rid)
            apply_update(ctx, ctx.request, meta, rid, target)  # type: ignore[arg-type]
