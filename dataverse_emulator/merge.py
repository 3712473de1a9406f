"""The `Merge` action, as the service runs it (spec: research/merge-rules.md).

Body: `Target` and `Subordinate` (`{"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": id}`, or
`{"@odata.id": "contacts(id)"}`),
`UpdateContent` (optional; same `@odata.type`, the columns to write to the master; ignored for incident)
and `PerformParentingChecks` (bool, default false). 204 on success.

Order: `counters.merge_attempts[sub] += 1`, then in one transaction (a failure changes nothing):
B1 identical, B2 unsupported table, missing records, B3 inactive, B4 privilege, UpdateContent parsed,
A1 case parents, A2 parenting, A3 child-case limit, A4 active quote, A5 hierarchy loop; then related rows
move to the master (cascade.py, driven by relationships.py; the marketing plugin fires when list memberships
move, after the other rows have moved, so a rollback is real; a large cascade may be deferred, see
cascade.py), the master gets UpdateContent (modifiedon bumped) and the
subordinate is deactivated (`Entity.merged_state`, `merged = true`, `masterid`). Then
`counters.merge_success[sub] += 1` once the transaction commits (a merge undone with its `$batch` change set
is not counted). A list membership never doubles: when the master is already in the
subordinate's list, the subordinate's row is deleted (and the list's membercount drops by one).

Statuses and codes (the service's codes where documented; status 400 unless said):
| check | code | note |
|---|---|---|
| malformed body (no/unknown `@odata.type`, bad id) | 0x80040203 | InvalidArgument |
| B1 identical | 0x80045305 | MergeEntitiesIdenticalError |
| B2 unsupported table | 0x80040203 | code unverified (InvalidArgument) |
| record missing | 0x80040217, **404** | ObjectDoesNotExist; "{entity} With Id = {id} Does Not Exist" |
| B3 inactive master / subordinate | 0x80045304 | MergeEntityNotActiveError, with the observed texts |
| B4 no privilege (fault deny-merge) | 0x80045301, **403** | MergeSecurityError; status unverified, 403 = security |
| A1 case parents differ | 0x8003F450 | |
| A2 lose / different parenting | 0x80045317 / 0x80045316 | parent = master's parent after UpdateContent |
| A3 > 100 child cases | 0x8003F454 | MaxChildCasesLimitExceeded |
| A4 active quote | 0x80045302 | MergeActiveQuoteError; quote statecode 1 only; a Sales plug-in (`options.sales`) |
| A5 loop (account and contact) | 0x80045300 | MergeCyclicalParentingError; contact code unverified |
| marketing plugin | 0x80040265 | plugin error, as documented for plugin failures |
"""

from __future__ import annotations

import re
from typing import Any

from . import merge_checks as checks
from .cascade import move_related
from .context import Context
from .entityref import typed
from .errors import ServiceError
from .merge_checks import MergeRequest
from .schema import SCHEMA
from .serialize import parse_write_body
from .store import Ref

_TYPE_PREFIX = "Microsoft.Dynamics.CRM."
_GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$")


def _invalid(message: str) -> ServiceError:
    return ServiceError(400, "0x80040203", message)


def merge(ctx: Context, params: dict[str, Any]) -> None:
    """Handler of the unbound `Merge` action."""
    params = {**params, **{k: typed(ctx.store, params[k]) for k in ("Target", "Subordinate") if k in params}}
    req = parse_request(params)
    store = ctx.store
    with store.lock:
        store.counters.merge_attempts[req.sub_id] += 1
    with store.transaction():
        checks.check_identical(req)
        checks.check_supported(req)
        master, sub = checks.load_records(store, req)
        checks.check_active(req, master, sub)
        checks.check_privilege(ctx, req)
        changes = {} if req.entity == "incident" else parse_write_body(store, req.entity, req.update, for_update=True)
        checks.check_case_parents(req, master, sub)
        checks.check_parenting(req, master, sub)
        checks.check_child_case_limit(store, req)
        checks.check_active_quote(ctx, req)
        checks.check_hierarchy_loop(store, req, master, changes)
        move_related(ctx, req.entity, req.sub_ref, req.master_ref, lambda: checks.check_marketing_plugin(ctx, req))
        caller = {"modifiedby": Ref("systemuser", ctx.caller_id)} if ctx.caller_id else {}
        store.update(req.entity, req.target_id, {**changes, **caller})
        state, status = SCHEMA[req.entity].merged_state or (1, 2)
        store.update(req.entity, req.sub_id, {
            "statecode": state, "statuscode": status, "merged": True, "masterid": req.master_ref, **caller,
        })
        store.after_commit(lambda: store.counters.merge_success.update([req.sub_id]))


def parse_request(params: dict[str, Any]) -> MergeRequest:
    """Validate the body's shape; 400 with a clear message when it is wrong."""
    entity, target_id = _entity_ref(params.get("Target"), "Target")
    sub_entity, sub_id = _entity_ref(params.get("Subordinate"), "Subordinate")
    if sub_entity != entity:
        raise _invalid(f"The Subordinate's type '{sub_entity}' does not match the Target's type '{entity}'.")
    update = params.get("UpdateContent")
    content: dict[str, Any] = {}
    if update is not None:
        if not isinstance(update, dict):
            raise _invalid("UpdateContent must be an entity object with @odata.type.")
        kind = _type_name(update, "UpdateContent")
        if kind != entity:
            raise _invalid(f"UpdateContent's type '{kind}' does not match the Target's type '{entity}'.")
        content = {k: v for k, v in update.items() if not k.startswith("@")}
    checks_flag = params.get("PerformParentingChecks", False)
    if not isinstance(checks_flag, bool):
        raise _invalid("PerformParentingChecks must be true or false.")
    return MergeRequest(entity, target_id, sub_id, content, checks_flag)


def _type_name(value: dict[str, Any], label: str) -> str:
    kind = str(value.get("@odata.type") or "").lstrip("#")
    if not kind.startswith(_TYPE_PREFIX) or len(kind) == len(_TYPE_PREFIX):
        raise _invalid(f"{label} must have an @odata.type such as 'Microsoft.Dynamics.CRM.contact'.")
    return kind[len(_TYPE_PREFIX):].lower()


def _entity_ref(value: Any, label: str) -> tuple[str, str]:
    if not isinstance(value, dict):
        raise _invalid(f"The {label} parameter is required: an object with @odata.type and the record's id.")
    entity = _type_name(value, label)
    meta = SCHEMA.get(entity)
    pk = meta.primary_id if meta is not None else f"{entity}id"
    record_id = value.get(pk)
    if not isinstance(record_id, str) or not _GUID.match(record_id):
        raise _invalid(f"{label} must carry its primary key '{pk}' as a GUID.")
    return entity, record_id.strip("{}").lower()
