"""Merge in the emulator: every validation (exact status, code, message), every side effect, atomicity,
and marketing-list membership actions. Store-level: handlers are called directly with a Context."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from dataverse_emulator.context import Context
from dataverse_emulator.datasets import DEMO_ADMIN_ID, load_dataset
from dataverse_emulator.errors import ServiceError
from dataverse_emulator.operations import ACTIONS
from dataverse_emulator.options import EmulatorOptions, Faults
from dataverse_emulator.schema import SCHEMA
from dataverse_emulator.store import Ref, Store

OLD = "2020-01-01T00:00:00Z"
T = "Microsoft.Dynamics.CRM."


@pytest.fixture
def store() -> Store:
    s = Store()
    load_dataset(s, "empty", 1)
    return s


def ctx_for(store: Store, **faults: Any) -> Context:
    return Context(store, EmulatorOptions(faults=Faults(**faults)), DEMO_ADMIN_ID, "http://test/api/data/v9.2/")


def add(store: Store, entity: str, **values: Any) -> str:
    values.setdefault("createdon", OLD)
    return store.insert(entity, values)


def body(entity: str, target: str, sub: str, update: dict[str, Any] | None = None, checks: bool = False) -> dict:
    pk = store_pk(entity)
    out: dict[str, Any] = {"Target": {"@odata.type": T + entity, pk: target},
                           "Subordinate": {"@odata.type": T + entity, pk: sub}, "PerformParentingChecks": checks}
    if update is not None:
        out["UpdateContent"] = {"@odata.type": T + entity, **update}
    return out


def store_pk(entity: str) -> str:
    return SCHEMA[entity].primary_id if entity in SCHEMA else f"{entity}id"


def merge(store: Store, params: dict[str, Any], **faults: Any) -> None:
    """Run Merge and check that it merged: 204 (None), the subordinate inactive, merged into the target."""
    assert ACTIONS["Merge"](ctx_for(store, **faults), params) is None
    entity = params["Target"]["@odata.type"][len(T):]
    pk = store_pk(entity)
    sub = store.get(entity, params["Subordinate"][pk])
    assert sub is not None and sub["merged"] is True and sub["statecode"] != 0
    assert sub["masterid"] == Ref(entity, params["Target"][pk])


def refused(store: Store, params: dict[str, Any], **faults: Any) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        merge(store, params, **faults)
    return info.value


def pair(store: Store, entity: str = "contact", **common: Any) -> tuple[str, str]:
    return add(store, entity, **common), add(store, entity, **common)


# -- success and side effects -----------------------------------------------------------------------
def test_contact_merge_deactivates_subordinate_links_master_and_applies_update(store: Store) -> None:
    m, s = pair(store, emailaddress1="a@x.example")
    merge(store, body("contact", m, s, {"jobtitle": "CEO"}))
    sub, master = store.get("contact", s), store.get("contact", m)
    assert (sub["statecode"], sub["statuscode"], sub["merged"]) == (1, 2, True)
    assert sub["masterid"] == Ref("contact", m)
    assert master["jobtitle"] == "CEO" and master["modifiedon"] > OLD
    assert store.counters.merge_success[s] == 1 and store.counters.merge_attempts[s] == 1


@pytest.mark.parametrize(("entity", "state"), [("account", (1, 2)), ("lead", (2, 7)), ("incident", (2, 2000))])
def test_merged_state_per_entity(store: Store, entity: str, state: tuple[int, int]) -> None:
    m, s = pair(store, entity)
    merge(store, body(entity, m, s))
    rec = store.get(entity, s)
    assert (rec["statecode"], rec["statuscode"], rec["merged"], rec["masterid"]) == (*state, True, Ref(entity, m))


def test_incident_update_content_is_ignored(store: Store) -> None:
    m, s = add(store, "incident", title="Old"), add(store, "incident", title="Sub")
    merge(store, body("incident", m, s, {"title": "New"}))
    assert store.get("incident", m)["title"] == "Old"


def test_update_content_lookup_bind_is_applied(store: Store) -> None:
    acc = add(store, "account", name="Parent")
    m, s = pair(store)
    merge(store, body("contact", m, s, {"parentcustomerid_account@odata.bind": f"/accounts({acc})"}))
    assert store.get("contact", m)["parentcustomerid"] == Ref("account", acc)


def test_related_rows_move_to_master(store: Store) -> None:
    m, s = pair(store, "account")
    child = add(store, "contact", parentcustomerid=Ref("account", s))
    sub_acc = add(store, "account", parentaccountid=Ref("account", s))
    task = add(store, "task", regardingobjectid=Ref("account", s))
    quote = add(store, "quote", customerid=Ref("account", s), statecode=0)
    case = add(store, "incident", customerid=Ref("account", s))
    merge(store, body("account", m, s))
    master = Ref("account", m)
    assert store.get("contact", child)["parentcustomerid"] == master
    assert store.get("account", sub_acc)["parentaccountid"] == master
    assert store.get("task", task)["regardingobjectid"] == master
    assert store.get("quote", quote)["customerid"] == master
    assert store.get("incident", case)["customerid"] == master


def test_contact_merge_moves_primary_contact_and_child_contacts(store: Store) -> None:
    m, s = pair(store)
    acc = add(store, "account", primarycontactid=Ref("contact", s))
    child = add(store, "contact", parentcustomerid=Ref("contact", s))
    merge(store, body("contact", m, s))
    assert store.get("account", acc)["primarycontactid"] == Ref("contact", m)
    assert store.get("contact", child)["parentcustomerid"] == Ref("contact", m)


def _list(store: Store, code: int = 2) -> str:
    return add(store, "list", listname="L", createdfromcode=code, type=False, membercount=0)


def _join(store: Store, list_id: str, entity: str, rid: str) -> None:
    ACTIONS["AddMemberList"](ctx_for(store), {"@bound": {"entity": "list", "id": list_id}, "EntityId": rid})


def test_list_membership_moves_to_master(store: Store) -> None:
    m, s = pair(store)
    lst = _list(store)
    _join(store, lst, "contact", s)
    merge(store, body("contact", m, s))
    members = [r["entityid"] for r in store.rows("listmember")]
    assert members == [Ref("contact", m)] and store.get("list", lst)["membercount"] == 1


def test_list_membership_never_doubles(store: Store) -> None:
    m, s = pair(store)
    lst = _list(store)
    _join(store, lst, "contact", m)
    _join(store, lst, "contact", s)
    assert store.get("list", lst)["membercount"] == 2
    merge(store, body("contact", m, s))
    assert [r["entityid"] for r in store.rows("listmember")] == [Ref("contact", m)]
    assert store.get("list", lst)["membercount"] == 1


def test_attempts_count_failures_success_does_not(store: Store) -> None:
    m, s = pair(store)
    add(store, "quote", customerid=Ref("contact", s), statecode=1)
    refused(store, body("contact", m, s))
    refused(store, body("contact", m, s))
    assert store.counters.merge_attempts[s] == 2 and store.counters.merge_success[s] == 0


# -- basic validation ------------------------------------------------------------------------------
def test_b1_identical(store: Store) -> None:
    m = add(store, "contact")
    err = refused(store, body("contact", m, m))
    assert (err.status, err.code) == (400, "0x80045305")
    assert err.message == "Merge cannot be performed on master and sub-entities that are identical."


@pytest.mark.parametrize("entity", ["task", "opportunity"])
def test_b2_unsupported_entity(store: Store, entity: str) -> None:
    ids = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222")
    err = refused(store, body(entity, *ids))
    assert (err.status, err.code) == (400, "0x80040203")
    assert err.message == f"This type: {entity} is not supported with merge operation"


def test_missing_target_and_subordinate_are_404(store: Store) -> None:
    real, ghost = add(store, "contact"), "33333333-3333-4333-8333-333333333333"
    err = refused(store, body("contact", ghost, real))
    assert (err.status, err.code, err.message) == (404, "0x80040217", f"contact With Id = {ghost} Does Not Exist")
    err = refused(store, body("contact", real, ghost))
    assert (err.status, err.message) == (404, f"contact With Id = {ghost} Does Not Exist")


def test_b3_inactive_master(store: Store) -> None:
    m, s = add(store, "contact", statecode=1, statuscode=2), add(store, "contact")
    err = refused(store, body("contact", m, s))
    assert (err.status, err.code, err.message) == (400, "0x80045304", f"master entity:contact-{m} is deactive")


def test_b3_inactive_subordinate(store: Store) -> None:
    m, s = add(store, "lead"), add(store, "lead", statecode=2, statuscode=7)
    err = refused(store, body("lead", m, s))
    assert (err.status, err.code, err.message) == (400, "0x80045304", f"sub-entity:lead-{s} is deactive")


def test_b4_missing_privilege_is_403(store: Store) -> None:
    m, s = pair(store)
    err = refused(store, body("contact", m, s), deny_merge=frozenset({s}))
    assert (err.status, err.code) == (403, "0x80045301")
    assert err.message == "Merge is not allowed: caller does not have the privilege or access."


@pytest.mark.parametrize("params", [
    {"Target": {"contactid": "11111111-1111-4111-8111-111111111111"},
     "Subordinate": {"@odata.type": T + "contact", "contactid": "22222222-2222-4222-8222-222222222222"}},
    {"Target": {"@odata.type": T + "contact", "contactid": "not-a-guid"},
     "Subordinate": {"@odata.type": T + "contact", "contactid": "22222222-2222-4222-8222-222222222222"}},
    {"Target": {"@odata.type": T + "contact", "contactid": "11111111-1111-4111-8111-111111111111"},
     "Subordinate": {"@odata.type": T + "account", "accountid": "22222222-2222-4222-8222-222222222222"}},
    {"Subordinate": {"@odata.type": T + "contact", "contactid": "22222222-2222-4222-8222-222222222222"}},
])
def test_malformed_body_is_400(store: Store, params: dict[str, Any]) -> None:
    err = refused(store, params)
    assert (err.status, err.code) == (400, "0x80040203")


@pytest.mark.parametrize("update", [{"nosuchcolumn": 1}, {"createdon": OLD}, {"_parentcustomerid_value": "x"}])
def test_update_content_bad_columns_are_400(store: Store, update: dict[str, Any]) -> None:
    m, s = pair(store)
    assert refused(store, body("contact", m, s, update)).status == 400
    assert store.get("contact", s)["statecode"] == 0


# -- advanced validation ---------------------------------------------------------------------------
def test_a1_cases_with_different_parents(store: Store) -> None:
    p1, p2 = add(store, "incident"), add(store, "incident")
    m = add(store, "incident", parentcaseid=Ref("incident", p1))
    s = add(store, "incident", parentcaseid=Ref("incident", p2))
    err = refused(store, body("incident", m, s))
    assert (err.code, err.message) == ("0x8003F450", "Child cases having different parent case can not be merged.")


def test_a1_cases_with_same_parent_merge(store: Store) -> None:
    p = add(store, "incident")
    m, s = pair(store, "incident", parentcaseid=Ref("incident", p))
    merge(store, body("incident", m, s))


def test_a3_more_than_100_child_cases(store: Store) -> None:
    m, s = pair(store, "incident")
    for parent, count in ((m, 60), (s, 41)):
        for _ in range(count):
            add(store, "incident", parentcaseid=Ref("incident", parent))
    err = refused(store, body("incident", m, s))
    assert err.code == "0x8003F454"
    assert err.message == ("A Parent Case cannot have more than 100 child cases. "
                           "Contact your administrator for more details")


def test_a2_subordinate_would_lose_parent(store: Store) -> None:
    acc = add(store, "account")
    m, s = add(store, "contact"), add(store, "contact", parentcustomerid=Ref("account", acc))
    err = refused(store, body("contact", m, s, checks=True))
    assert (err.status, err.code, err.message) == (400, "0x80045317", "Merge warning: sub-entity might lose parenting.")


def test_a2_differently_parented(store: Store) -> None:
    a1, a2 = add(store, "account"), add(store, "account")
    m = add(store, "account", parentaccountid=Ref("account", a1))
    s = add(store, "account", parentaccountid=Ref("account", a2))
    err = refused(store, body("account", m, s, checks=True))
    assert (err.code, err.message) == ("0x80045316", "Merge warning: sub-entity will be differently parented.")


def test_a2_compares_the_records_as_they_stand_not_after_update_content(store: Store) -> None:
    """MergeRequest.PerformParentingChecks: "whether the parent information is different for the two entity
    records"; validation runs before UpdateContent, so sending the subordinate's parent does not avoid it."""
    a1, a2 = add(store, "account"), add(store, "account")
    m = add(store, "contact", parentcustomerid=Ref("account", a1))
    s = add(store, "contact", parentcustomerid=Ref("account", a2))
    with pytest.raises(ServiceError, match="differently parented"):
        merge(store, body("contact", m, s, {"parentcustomerid_account@odata.bind": f"/accounts({a2})"}, checks=True))
    assert store.get("contact", m)["parentcustomerid"] == Ref("account", a1)


def test_a2_not_checked_without_parenting_checks(store: Store) -> None:
    a1, a2 = add(store, "account"), add(store, "account")
    m = add(store, "contact", parentcustomerid=Ref("account", a1))
    s = add(store, "contact", parentcustomerid=Ref("account", a2))
    merge(store, body("contact", m, s, checks=False))


def test_a4_active_quote_on_subordinate(store: Store) -> None:
    m, s = pair(store)
    add(store, "quote", customerid=Ref("contact", s), statecode=1, statuscode=3)
    err = refused(store, body("contact", m, s))
    assert (err.code, err.message) == ("0x80045302", "Merge cannot be performed on sub-entity that has active quote.")


def test_a4_draft_quote_or_active_quote_on_master_does_not_block(store: Store) -> None:
    m, s = pair(store, "account")
    add(store, "quote", customerid=Ref("account", s), statecode=0)
    add(store, "quote", customerid=Ref("account", m), statecode=1)
    merge(store, body("account", m, s))


def _hierarchy(store: Store) -> tuple[str, str, str]:
    """A <- B <- C (C's parent is B, B's parent is A)."""
    a = add(store, "account", name="A")
    b = add(store, "account", name="B", parentaccountid=Ref("account", a))
    c = add(store, "account", name="C", parentaccountid=Ref("account", b))
    return a, b, c


def test_a5_copying_the_subordinates_parent_onto_the_top_makes_a_loop(store: Store) -> None:
    a, b, c = _hierarchy(store)
    err = refused(store, body("account", a, c, {"parentaccountid@odata.bind": f"/accounts({b})"}))
    assert (err.code, err.message) == ("0x80045300", "Merge could create cyclical parenting.")


def test_a5_master_below_subordinate_makes_a_loop(store: Store) -> None:
    a, b, c = _hierarchy(store)
    err = refused(store, body("account", c, a))  # B moves under C, and C's parent is B
    assert err.message == "Merge could create cyclical parenting."


def test_a5_merging_the_top_into_a_sibling_tree_is_fine(store: Store) -> None:
    a, b, c = _hierarchy(store)
    other = add(store, "account", name="A2")
    merge(store, body("account", other, a))
    assert store.get("account", b)["parentaccountid"] == Ref("account", other)


def test_a5_contact_loop(store: Store) -> None:
    top = add(store, "contact")
    mid = add(store, "contact", parentcustomerid=Ref("contact", top))
    err = refused(store, body("contact", mid, top))
    assert (err.code, err.message) == ("0x80045300", "Loop exists in the contacts hierarchy.")


# -- marketing plugin and atomicity -----------------------------------------------------------------
def _snapshot(store: Store) -> dict[str, Any]:
    return store.to_json()["tables"]


def test_marketing_plugin_refuses_list_member_and_changes_nothing(store: Store) -> None:
    m, s = pair(store)
    for _ in range(3):
        add(store, "task", regardingobjectid=Ref("contact", s))
    _join(store, _list(store), "contact", s)
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
    _join(store, _list(store), "contact", m)
    merge(store, body("contact", m, s), marketing_plugin=True)


def test_failed_loop_check_changes_nothing(store: Store) -> None:
    a, b, c = _hierarchy(store)
    add(store, "task", regardingobjectid=Ref("account", c))
    before = _snapshot(store)
    refused(store, body("account", a, c, {"parentaccountid@odata.bind": f"/accounts({b})", "name": "Z"}))
    assert _snapshot(store) == before


def test_rollback_undoes_rows_already_moved(store: Store) -> None:
    """The plugin fires after other related rows moved: the transaction must put them back."""
    m, s = pair(store)
    task = add(store, "task", regardingobjectid=Ref("contact", s))
    _join(store, _list(store), "contact", s)
    refused(store, body("contact", m, s), marketing_plugin=True)
    assert store.get("task", task)["regardingobjectid"] == Ref("contact", s)


# -- list membership actions -----------------------------------------------------------------------
def test_add_member_list_returns_id_and_is_idempotent(store: Store) -> None:
    lst, c = _list(store), add(store, "contact")
    params = {"@bound": {"entity": "list", "id": lst}, "EntityId": c}
    first = ACTIONS["AddMemberList"](ctx_for(store), params)
    again = ACTIONS["AddMemberList"](ctx_for(store), params)
    assert first["Id"] == again["Id"] and store.get("list", lst)["membercount"] == 1


def test_add_member_list_checks_member_type(store: Store) -> None:
    lst, acc = _list(store, code=2), add(store, "account")
    with pytest.raises(ServiceError) as info:
        ACTIONS["AddMemberList"](ctx_for(store), {"ListId": lst, "EntityId": acc})
    assert info.value.status == 404


def test_remove_member_list_and_add_list_members_list(store: Store) -> None:
    lst = _list(store)
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
    lst, c = _list(handle.store), add(handle.store, "contact")
    api = make_api(handle)
    resp = api.post(f"lists({lst})/Microsoft.Dynamics.CRM.AddMemberList", json={"EntityId": c})
    assert resp.status_code == 200, resp.text
    assert resp.json()["Id"] == handle.store.rows("listmember")[0]["listmemberid"]
    resp = api.post(f"lists({lst})/Microsoft.Dynamics.CRM.RemoveMemberList", json={"EntityId": c})
    assert resp.status_code == 204 and not handle.store.rows("listmember")
