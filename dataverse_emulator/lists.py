"""Marketing list membership: `AddMemberList`, `RemoveMemberList`, `AddListMembersList`.

- `AddMemberList` is bound to a list: `POST lists({id})/Microsoft.Dynamics.CRM.AddMemberList` with
  `{"EntityId": id}`; answers `AddMemberListResponse` `{"Id": listmemberid}`. Unbound with `ListId` is
  accepted too. Adding a record that is already a member returns the existing membership.
- `RemoveMemberList` (bound to a list, or unbound with `ListId`) takes `EntityId`: the member record's id
  (the old SDK text calls it the listmember id; both are accepted). Removing a non-member is a no-op. 204.
- `AddListMembersList` (unbound): `List` (`{"@odata.type": "Microsoft.Dynamics.CRM.list", "listid": id}`)
  and `Members` (entity objects, or bare ids). 204.
The member's table must be the list's `createdfromcode` (1 account, 2 contact, 4 lead); dynamic lists
(`type` true) take no manual members. `list.membercount` follows every change.
"""

from __future__ import annotations

import re
from typing import Any

from .context import Context
from .errors import ServiceError, bad_request, not_found
from .store import Ref, Store

MEMBER_TYPES = {1: "account", 2: "contact", 4: "lead"}
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _guid(value: Any, label: str) -> str:
    text = str(value or "").strip("{}").lower()
    if not _GUID.match(text):
        raise bad_request(f"The {label} parameter must be a GUID.", "0x80040203")
    return text


def _list_id(params: dict[str, Any]) -> str:
    bound = params.get("@bound")
    if isinstance(bound, dict) and bound.get("entity") == "list":
        return _guid(bound.get("id"), "list id")
    return _guid(params.get("ListId"), "ListId")


def _load_list(store: Store, list_id: str) -> tuple[dict[str, Any], str]:
    row = store.get("list", list_id)
    if row is None:
        raise not_found("list", list_id)
    member_type = MEMBER_TYPES.get(int(row.get("createdfromcode") or 0))
    if member_type is None:
        raise bad_request(f"The list {list_id} has no valid member type (createdfromcode).", "0x80040203")
    return row, member_type


def bump_member_count(store: Store, list_ref: Any, delta: int) -> None:
    """Keep `list.membercount` in step with its listmember rows."""
    if isinstance(list_ref, Ref):
        row = store.get("list", list_ref.id)
        if row is not None:
            count = max(0, int(row.get("membercount") or 0) + delta)
            store.update("list", list_ref.id, {"membercount": count})


def add_member(store: Store, list_id: str, entity_id: str) -> str:
    """Add one member (idempotent); returns the listmember id."""
    with store.transaction():
        row, member_type = _load_list(store, list_id)
        if row.get("type"):
            raise ServiceError(400, "0x80040203", "Members cannot be added to a dynamic marketing list.")
        if store.get(member_type, entity_id) is None:
            raise not_found(member_type, entity_id)
        list_ref, member = Ref("list", list_id), Ref(member_type, entity_id)
        existing = store.find("listmember", lambda m: m.get("listid") == list_ref and m.get("entityid") == member)
        if existing:
            return existing[0]["listmemberid"]
        member_id = store.insert("listmember", {"listid": list_ref, "entityid": member})
        bump_member_count(store, list_ref, +1)
        return member_id


def add_member_list(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    member_id = add_member(ctx.store, _list_id(params), _guid(params.get("EntityId"), "EntityId"))
    return {
        "@odata.context": f"{ctx.api_url}$metadata#Microsoft.Dynamics.CRM.AddMemberListResponse",
        "Id": member_id,
    }


def remove_member_list(ctx: Context, params: dict[str, Any]) -> None:
    store = ctx.store
    list_id, entity_id = _list_id(params), _guid(params.get("EntityId"), "EntityId")
    with store.transaction():
        _load_list(store, list_id)
        list_ref = Ref("list", list_id)
        rows = store.find("listmember", lambda m: m.get("listid") == list_ref and (
            (isinstance(m.get("entityid"), Ref) and m["entityid"].id == entity_id) or m["listmemberid"] == entity_id
        ))
        for row in rows:
            store.delete("listmember", row["listmemberid"])
            bump_member_count(store, list_ref, -1)


def add_list_members_list(ctx: Context, params: dict[str, Any]) -> None:
    target = params.get("List")
    list_id = _guid(target.get("listid") if isinstance(target, dict) else target, "List")
    members = params.get("Members")
    if not isinstance(members, list):
        raise bad_request("The Members parameter must be a collection of records.", "0x80040203")
    with ctx.store.transaction():
        _, member_type = _load_list(ctx.store, list_id)
        for member in members:
            raw = member.get(f"{member_type}id") if isinstance(member, dict) else member
            add_member(ctx.store, list_id, _guid(raw, "Members"))
