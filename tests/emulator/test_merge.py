"""Merge in the emulator: side effects, basic validation (exact status, code, message).
Store-level: handlers are called directly with a Context."""

from __future__ import annotations

from typing import Any

import pytest

from dataverse_emulator.store import Ref, Store
from tests.emulator.merge_helpers import (
    OLD,
    T,
    add,
    body,
    empty_store,
    join_list,
    marketing_list,
    merge,
    pair,
    refused,
)


@pytest.fixture
def store() -> Store:
    return empty_store()


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


def test_list_membership_moves_to_master(store: Store) -> None:
    m, s = pair(store)
    lst = marketing_list(store)
    join_list(store, lst, "contact", s)
    merge(store, body("contact", m, s))
    members = [r["entityid"] for r in store.rows("listmember")]
    assert members == [Ref("contact", m)] and store.get("list", lst)["membercount"] == 1


def test_list_membership_never_doubles(store: Store) -> None:
    m, s = pair(store)
    lst = marketing_list(store)
    join_list(store, lst, "contact", m)
    join_list(store, lst, "contact", s)
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
