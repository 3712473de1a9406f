"""Merge's cascade over HTTP: every related table with a Merge cascade moves (activities, notes,
opportunities), list memberships move or are dropped, a large cascade can be deferred (the async switch), and
the active-quote refusal belongs to the Sales switch."""

from __future__ import annotations

import time
from typing import Any

from dataverse_emulator.store import Ref

CONTACT = "Microsoft.Dynamics.CRM.contact"


def merge(api: Any, target: str, sub: str) -> Any:
    return api.post("Merge", json={"Target": {"@odata.type": CONTACT, "contactid": target},
                                   "Subordinate": {"@odata.type": CONTACT, "contactid": sub},
                                   "PerformParentingChecks": False})


def test_merge_moves_activities_notes_and_opportunities(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty")
    api, s = make_api(dv), dv.store
    target, sub = s.insert("contact", {"lastname": "T"}), s.insert("contact", {"lastname": "S"})
    ref = Ref("contact", sub)
    moved = {
        ("phonecall", "regardingobjectid"): s.insert("phonecall", {"subject": "p", "regardingobjectid": ref}),
        ("email", "regardingobjectid"): s.insert("email", {"subject": "e", "regardingobjectid": ref}),
        ("appointment", "regardingobjectid"): s.insert("appointment", {"subject": "a", "regardingobjectid": ref}),
        ("annotation", "objectid"): s.insert("annotation", {"subject": "n", "objectid": ref}),
        ("opportunity", "customerid"): s.insert("opportunity", {"name": "o", "customerid": ref}),
        ("task", "regardingobjectid"): s.insert("task", {"subject": "t", "regardingobjectid": ref}),
    }
    contact_of = s.insert("opportunity", {"name": "p", "parentcontactid": ref})
    assert merge(api, target, sub).status_code == 204
    for (table, attr), rid in moved.items():
        assert s.get(table, rid)[attr] == Ref("contact", target), table
    assert s.get("opportunity", contact_of)["parentcontactid"] == Ref("contact", target)
    notes = api.get(f"contacts({target})/Contact_Annotation?$select=subject").json()["value"]
    assert [n["subject"] for n in notes] == ["n"]


def test_list_membership_moves_or_is_dropped(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty")
    api, s = make_api(dv), dv.store
    target, sub = s.insert("contact", {"lastname": "T"}), s.insert("contact", {"lastname": "S"})
    both, only_sub = (s.insert("list", {"listname": n, "createdfromcode": 2, "membercount": 0}) for n in "AB")
    for list_id, member in ((both, target), (both, sub), (only_sub, sub)):
        assert api.post(f"lists({list_id})/Microsoft.Dynamics.CRM.AddMemberList",
                        json={"EntityId": member}).status_code == 200
    assert merge(api, target, sub).status_code == 204
    members = {(m["_listid_value"], m["_entityid_value"])
               for m in api.get("listmembers?$select=_listid_value,_entityid_value").json()["value"]}
    assert members == {(both, target), (only_sub, target)}
    counts = {r["listid"]: r["membercount"] for r in api.get("lists?$select=membercount").json()["value"]}
    assert counts == {both: 1, only_sub: 1}


def test_a_large_cascade_is_deferred_when_the_switch_is_on(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", async_cascade_s=0.5, async_cascade_threshold=5)
    api, s = make_api(dv), dv.store
    target, sub = s.insert("contact", {"lastname": "T"}), s.insert("contact", {"lastname": "S"})
    for i in range(8):
        s.insert("task", {"subject": f"t{i}", "regardingobjectid": Ref("contact", sub)})
    small_target, small_sub = s.insert("contact", {"lastname": "t"}), s.insert("contact", {"lastname": "s"})
    s.insert("task", {"subject": "one", "regardingobjectid": Ref("contact", small_sub)})

    def tasks_of(contact: str) -> int:
        return len(api.get(f"contacts({contact})/Contact_Tasks?$select=subject").json()["value"])

    assert merge(api, target, sub).status_code == 204
    assert (tasks_of(sub), tasks_of(target)) == (8, 0)  # answered, rows not moved yet
    state = api.get(f"contacts({sub})?$select=statecode,merged").json()
    assert (state["statecode"], state["merged"]) == (1, True)  # the subordinate itself is done
    assert merge(api, small_target, small_sub).status_code == 204
    assert (tasks_of(small_sub), tasks_of(small_target)) == (0, 1)  # below the threshold: in the request
    time.sleep(0.6)
    assert (tasks_of(sub), tasks_of(target)) == (0, 8)  # eventually consistent


def test_a_deleted_row_is_skipped_by_a_deferred_cascade(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", async_cascade_s=0.3, async_cascade_threshold=1)
    api, s = make_api(dv), dv.store
    target, sub = s.insert("contact", {"lastname": "T"}), s.insert("contact", {"lastname": "S"})
    tasks = [s.insert("task", {"subject": f"t{i}", "regardingobjectid": Ref("contact", sub)}) for i in range(3)]
    assert merge(api, target, sub).status_code == 204
    assert api.delete(f"tasks({tasks[0]})").status_code == 204
    time.sleep(0.4)
    assert api.get("WhoAmI").status_code == 200
    assert [s.get("task", t)["regardingobjectid"] for t in tasks[1:]] == [Ref("contact", target)] * 2


def test_the_active_quote_refusal_needs_sales(make_emulator: Any, make_api: Any) -> None:
    for sales, expected in ((True, 400), (False, 204)):
        dv = make_emulator("empty", sales=sales)
        api, s = make_api(dv), dv.store
        target, sub = s.insert("contact", {"lastname": "T"}), s.insert("contact", {"lastname": "S"})
        s.insert("quote", {"name": "Q", "customerid": Ref("contact", sub), "statecode": 1, "statuscode": 2})
        resp = merge(api, target, sub)
        assert resp.status_code == expected, (sales, resp.text)
        if sales:
            assert resp.json()["error"]["code"] == "0x80045302"
