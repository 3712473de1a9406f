"""Merge in the emulator: the parenting checks and the other advanced validation rules (A1-A5)."""

from __future__ import annotations

import pytest

from dataverse_emulator.errors import ServiceError
from dataverse_emulator.store import Ref, Store
from tests.emulator.merge_helpers import (
    add,
    body,
    empty_store,
    hierarchy,
    merge,
    pair,
    refused,
)


@pytest.fixture
def store() -> Store:
    return empty_store()


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


def test_a5_copying_the_subordinates_parent_onto_the_top_makes_a_loop(store: Store) -> None:
    a, b, c = hierarchy(store)
    err = refused(store, body("account", a, c, {"parentaccountid@odata.bind": f"/accounts({b})"}))
    assert (err.code, err.message) == ("0x80045300", "Merge could create cyclical parenting.")


def test_a5_master_below_subordinate_makes_a_loop(store: Store) -> None:
    a, b, c = hierarchy(store)
    err = refused(store, body("account", c, a))  # B moves under C, and C's parent is B
    assert err.message == "Merge could create cyclical parenting."


def test_a5_merging_the_top_into_a_sibling_tree_is_fine(store: Store) -> None:
    a, b, c = hierarchy(store)
    other = add(store, "account", name="A2")
    merge(store, body("account", other, a))
    assert store.get("account", b)["parentaccountid"] == Ref("account", other)


def test_a5_contact_loop(store: Store) -> None:
    top = add(store, "contact")
    mid = add(store, "contact", parentcustomerid=Ref("contact", top))
    err = refused(store, body("contact", mid, top))
    assert (err.code, err.message) == ("0x80045300", "Loop exists in the contacts hierarchy.")
