"""Merge in the emulator: the marketing plugin, atomicity (nothing half-done), list membership actions, over HTTP."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from dataverse_emulator.context import Context
from dataverse_emulator.datasets import DEMO_ADMIN_ID, load_dataset
from dataverse_emulator.errors import ServiceError
from dataverse_emulator.operations import ACTIONS
from dataverse_emulator.options import EmulatorOptions, Faults
from dataverse_emulator.store import Ref, Store
from tests.emulator.merge_helpers import (
    T,
    add,
    body,
    ctx_for,
    empty_store,
    hierarchy,
    join_list,
    marketing_list,
    merge,
    pair,
    refused,
)


@pytest.fixture
def store() -> Store:
    return empty_store()


# -- marketing plugin and atomicity -----------------------------------------------------------------
def _snapshot(store: Store) -> dict[str, Any]:
    return store.to_json()["tables"]


def test_marketing_plugin_refuses_list_member_and_changes_nothing(store: Store) -> None:
    m, s = pair(store)
    for _ in range(3):
        add(store, "task", regardingobjectid=Ref("contact", s))
    join_list(store, marketing_list(store), "contact", s)
    before = _snapshot(store)
    err = refused(store, body("contact", m, s, {"jobtitle": "X"}), marketing_plugin=True)
    assert (err.status, err.code) == (400, "0x80040265")
    assert err.message == (
        "Disassociation cannot be performed between an entity of type list and an entity of type contact.; "
        "[Microsoft.Dynamics.Marketing.Plugins: Microsoft.Dynamics.Marketing.Plugins.PreDisassociateEntitiesPlugin]")
    assert _snapshot(store) == before
    assert store.counters.merge_success[s] == 0


def test_marketing_plugin_ignores_non_members(store: Store) -> None:
    m, s = pair(store)
    join_list(store, marketing_list(store), "contact", m)
    merge(store, body("contact", m, s), marketing_plugin=True)


def test_failed_loop_check_changes_nothing(store: Store) -> None:
    a, b, c = hierarchy(store)
    add(store, "task", regardingobjectid=Ref("account", c))
    before = _snapshot(store)
    refused(store, body("account", a, c, {"parentaccountid@odata.bind": f"/accounts({b})", "name": "Z"}))
    assert _snapshot(store) == before


def test_rollback_undoes_rows_already_moved(store: Store) -> None:
    """The plugin fires after other related rows moved: the transaction must put them back."""
    m, s = pair(store)
    task = add(store, "task", regardingobjectid=Ref("contact", s))
    join_list(store, marketing_list(store), "contact", s)
    refused(store, body("contact", m, s), marketing_plugin=True)
    assert store.get("task", task)["regardingobjectid"] == Ref("contact", s)


# -- list membership actions -----------------------------------------------------------------------
def test_add_member_list_returns_id_and_is_idempotent(store: Store) -> None:
    lst, c = marketing_list(store), add(store, "contact")
    params = {"@bound": {"entity": "list", "id": lst}, "EntityId": c}
    first = ACTIONS["AddMemberList"](ctx_for(store), params)
    again = ACTIONS["AddMemberList"](ctx_for(store), params)
    assert first["Id"] == again["Id"] and store.get("list", lst)["membercount"] == 1


def test_add_member_list_checks_member_type(store: Store) -> None:
    lst, acc = marketing_list(store, code=2), add(store, "account")
    with pytest.raises(ServiceError) as info:
        ACTIONS["AddMemberList"](ctx_for(store), {"ListId": lst, "EntityId": acc})
    assert info.value.status == 404


def test_remove_member_list_and_add_list_members_list(store: Store) -> None:
    lst = marketing_list(store)
    c1, c2 = add(store, "contact"), add(store, "contact")
    ACTIONS["AddListMembersList"](ctx_for(store), {
        "List": {"@odata.type": T + "list", "listid": lst},
        "Members": [{"@odata.type": T + "contact", "contactid": c1}, {"@odata.type": T + "contact", "contactid": c2}],
    })
    assert store.get("list", lst)["membercount"] == 2
    bound = {"entity": "list", "id": lst}
    assert ACTIONS["RemoveMemberList"](ctx_for(store), {"@bound": bound, "EntityId": c1}) is None
    assert [r["entityid"] for r in store.rows("listmember")] == [Ref("contact", c2)]
    assert store.get("list", lst)["membercount"] == 1


def test_deny_merge_ids_match_case_insensitively() -> None:
    """An upper-case id in the deny-merge fault still denies."""
    s = Store()
    load_dataset(s, "empty", 1)
    m, sub = add(s, "contact"), add(s, "contact")
    opts = dataclasses.replace(EmulatorOptions(), faults=Faults(deny_merge=frozenset({sub.upper()})))
    with pytest.raises(ServiceError) as info:
        ACTIONS["Merge"](Context(s, opts, DEMO_ADMIN_ID, "http://t/"), body("contact", m, sub))
    assert info.value.status == 403


# -- over HTTP -------------------------------------------------------------------------------------
def test_merge_over_http(make_emulator: Any, make_api: Any) -> None:
    handle = make_emulator("empty")
    m, s = add(handle.store, "contact", lastname="A"), add(handle.store, "contact", lastname="B")
    denied = add(handle.store, "contact")
    api = make_api(handle)
    resp = api.post("Merge", json=body("contact", m, s, {"jobtitle": "CTO"}, checks=True))
    assert resp.status_code == 204, resp.text
    assert api.get(f"contacts({s})?$select=statecode,merged,_masterid_value").json()["_masterid_value"] == m
    resp = api.post("Merge", json=body("contact", m, s))
    assert resp.status_code == 400
    assert resp.json()["error"] == {"code": "0x80045304", "message": f"sub-entity:contact-{s} is deactive"}
    ghost = "44444444-4444-4444-8444-444444444444"
    resp = api.post("Merge", json=body("contact", m, ghost))
    assert (resp.status_code, resp.json()["error"]["code"]) == (404, "0x80040217")
    denying = make_api(make_emulator("empty", faults=f"deny-merge={denied}"))
    a = add(denying.handle.store, "contact")
    add(denying.handle.store, "contact", contactid=denied)
    resp = denying.post("Merge", json=body("contact", a, denied))
    assert (resp.status_code, resp.json()["error"]["code"]) == (403, "0x80045301")


def test_list_actions_over_http(make_emulator: Any, make_api: Any) -> None:
    handle = make_emulator("empty")
    lst, c = marketing_list(handle.store), add(handle.store, "contact")
    api = make_api(handle)
    resp = api.post(f"lists({lst})/Microsoft.Dynamics.CRM.AddMemberList", json={"EntityId": c})
    assert resp.status_code == 200, resp.text
    assert resp.json()["Id"] == handle.store.rows("listmember")[0]["listmemberid"]
    resp = api.post(f"lists({lst})/Microsoft.Dynamics.CRM.RemoveMemberList", json={"EntityId": c})
    assert resp.status_code == 204 and not handle.store.rows("listmember")
