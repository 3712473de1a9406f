"""preflight: one test per finding, the summary and the helpers that build PreflightData."""

from __future__ import annotations

import pytest

from planning.preflight import (
    FAIL,
    FAIL_IF_MARKETING_PLUGIN,
    FAIL_IF_PARENTING,
    WARN,
    PreflightData,
    active_quote_counts,
    check_merge,
    count_by,
    gather,
    summarise,
    would_fail,
)
from runfolder.state import Finding

T, S = "00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000b2"
P1, P2 = "00000000-0000-0000-0000-0000000000c3", "00000000-0000-0000-0000-0000000000d4"
NONE = PreflightData()


def contact(rid: str, parent: str | None = None, state: int = 0) -> dict:
    return {"contactid": rid, "statecode": state, "_parentcustomerid_value": parent}


def account(rid: str, parent: str | None = None) -> dict:
    return {"accountid": rid, "statecode": 0, "_parentaccountid_value": parent}


def case(rid: str, parent: str | None = None) -> dict:
    return {"incidentid": rid, "statecode": 0, "_parentcaseid_value": parent}


def codes(findings: tuple[Finding, ...]) -> list[str]:
    return [f.code for f in findings]


def test_a_clean_merge_has_no_findings() -> None:
    assert check_merge("contact", contact(T, P1), contact(S, P1), NONE) == ()
    assert check_merge("lead", {"leadid": T}, {"leadid": S}, NONE) == ()


def test_unsupported_entity() -> None:
    (finding,) = check_merge("quote", {"quoteid": T}, {"quoteid": S}, NONE)
    assert (finding.code, finding.severity) == ("unsupported_entity", FAIL)
    assert finding.message == "This type: quote is not supported with merge operation"


def test_same_record() -> None:
    (finding,) = check_merge("contact", contact(T), contact(T), NONE)
    assert finding.code == "same_record" and finding.severity == FAIL
    assert finding.message == "Merge cannot be performed on master and sub-entities that are identical."


def test_inactive_target_and_subordinate() -> None:
    found = check_merge("contact", contact(T, state=1), contact(S, state=1), NONE)
    assert codes(found) == ["inactive", "inactive"] and {f.severity for f in found} == {FAIL}
    assert found[0].message == f"master entity:contact-{T} is deactive"
    assert found[1].message == f"sub-entity:contact-{S} is deactive"
    assert check_merge("contact", {"contactid": T}, {"contactid": S}, NONE) == ()  # statecode not read: no verdict


def test_parenting_differs() -> None:
    (finding,) = check_merge("contact", contact(T, P1), contact(S, P2), NONE)
    assert (finding.code, finding.severity) == ("parenting_differs", FAIL_IF_PARENTING)
    assert finding.message == "Merge warning: sub-entity will be differently parented."


def test_parent_lost() -> None:
    (finding,) = check_merge("account", account(T), account(S, P1), NONE)
    assert (finding.code, finding.severity) == ("parent_lost", FAIL_IF_PARENTING)
    assert finding.message == "Merge warning: sub-entity might lose parenting."
    assert check_merge("account", account(T, P1), account(S), NONE) == ()  # only the subordinate's parent counts


def test_active_quote() -> None:
    (finding,) = check_merge("contact", contact(T), contact(S), PreflightData(active_quotes={S: 2}))
    assert (finding.code, finding.severity) == ("active_quote", FAIL)
    assert finding.message == "Merge cannot be performed on sub-entity that has active quote."
    assert check_merge("contact", contact(T), contact(S), PreflightData(active_quotes={T: 1})) == ()  # master may


def test_hierarchy_loop_a_b_c() -> None:
    # accounts A <- B <- C: merging A (target) and C (subordinate) with C's parent B copied onto A
    a, b, c = T, P1, S
    ctx = PreflightData(parents={a: None, b: a, c: b})
    (finding,) = check_merge("account", account(a, parent=b), account(c, parent=b), ctx)
    assert (finding.code, finding.severity) == ("hierarchy_loop", FAIL)
    assert finding.message == "Merge could create cyclical parenting."
    # the same merge keeping A without a parent is fine (C's parent B is then A's child: sub loses parent)
    assert codes(check_merge("account", account(a), account(c, parent=b), ctx)) == ["parent_lost"]


def test_hierarchy_loop_through_the_subordinate_and_earlier_merges() -> None:
    x = P2
    # the target's parent X has the subordinate as parent: after the merge X's parent is the target
    ctx = PreflightData(parents={x: S, S: None})
    found = check_merge("contact", contact(T, x), contact(S), ctx)
    assert codes(found) == ["hierarchy_loop"] and found[0].message == "Loop exists in the contacts hierarchy."
    # the same through a subordinate merged earlier in the group
    ctx = PreflightData(parents={x: P1, P1: None})
    assert codes(check_merge("contact", contact(T, x), contact(S), ctx, absorbed=[P1])) == ["hierarchy_loop"]
    assert check_merge("contact", contact(T, x), contact(S), ctx) == ()


def test_marketing_list() -> None:
    (finding,) = check_merge("contact", contact(T), contact(S), PreflightData(list_memberships={S: 3}))
    assert (finding.code, finding.severity) == ("marketing_list", FAIL_IF_MARKETING_PLUGIN)
    assert "3 marketing lists" in finding.message and "add the target" in finding.message
    assert "\n" not in finding.message and " | " not in finding.message


def test_child_cases_parent_differs_and_limit() -> None:
    (finding,) = check_merge("incident", case(T, P1), case(S, P2), NONE)
    assert (finding.code, finding.severity) == ("child_cases", FAIL)
    assert finding.message == "Child cases having different parent case can not be merged."
    assert codes(check_merge("incident", case(T), case(S, P2), NONE)) == ["child_cases"]  # one-sided differs too
    assert check_merge("incident", case(T, P1), case(S, P1), PreflightData(child_cases={T: 60, S: 40})) == ()
    (limit,) = check_merge("incident", case(T), case(S), PreflightData(child_cases={T: 60, S: 41}))
    assert limit.code == "child_cases" and limit.message.startswith("A Parent Case cannot have more than 100")


def test_summarise_counts_merges_per_code() -> None:
    lost = Finding("parent_lost", FAIL_IF_PARENTING, "m")
    inactive = Finding("inactive", FAIL, "m")
    per_merge = [(), (lost,), (lost, inactive, inactive), (Finding("lookup_dropped", WARN, "m"),)]
    assert summarise(per_merge) == {"inactive": 1, "lookup_dropped": 1, "parent_lost": 2}


def test_would_fail_follows_the_step_4_settings() -> None:
    assert would_fail(Finding("x", FAIL, ""), parenting_checks=False)
    assert not would_fail(Finding("x", WARN, ""), parenting_checks=True, marketing_plugin=True)
    assert would_fail(Finding("x", FAIL_IF_PARENTING, ""), parenting_checks=True)
    assert not would_fail(Finding("x", FAIL_IF_PARENTING, ""), parenting_checks=False)
    assert would_fail(Finding("x", FAIL_IF_MARKETING_PLUGIN, ""), parenting_checks=False, marketing_plugin=True)


def test_building_the_data_from_fetched_rows() -> None:
    quotes = [{"_customerid_value": S.upper(), "statecode": 1}, {"_customerid_value": S, "statecode": 0},
              {"_customerid_value": T, "statecode": 2}, {"_customerid_value": S, "statecode": 1}]
    assert active_quote_counts(quotes) == {S: 2}  # Draft (0) and Won (2) do not block
    members = [{"_entityid_value": S, "_listid_value": "l1"}, {"_entityid_value": S, "_listid_value": "l2"},
               {"_entityid_value": S, "_listid_value": "l1"}, {"_entityid_value": None, "_listid_value": "l3"}]
    assert count_by(members, "_entityid_value", distinct="_listid_value") == {S: 2}
    assert count_by(members, "_entityid_value") == {S: 3}


def test_gather_reads_in_bulk_and_walks_up_the_hierarchy() -> None:
    lt = "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"
    tables = {
        "quotes": [{"_customerid_value": S, "statecode": 1}],
        "listmembers": [{"_entityid_value": S, "_listid_value": "l1"}],
        "contacts": [{"contactid": P1, "_parentcustomerid_value": P2, lt: "contact"},
                     {"contactid": P2, "_parentcustomerid_value": "acc", lt: "account"}],
    }
    asked: list[tuple[str, str, tuple[str, ...]]] = []

    def fetch(entity_set: str, key: str, ids: list[str], select: list[str]) -> list[dict]:
        asked.append((entity_set, key, tuple(ids)))
        return [r for r in tables.get(entity_set, []) if r.get(key) in ids]

    records = {T: {**contact(T, P1), lt: "contact"}, S: contact(S)}
    data = gather("contact", "contacts", "contactid", records, fetch)
    assert data.active_quotes == {S: 1} and data.list_memberships == {S: 1}
    assert data.parents == {T: P1, S: None, P1: P2, P2: None}  # P2's parent is an account: not this hierarchy
    assert [a[0] for a in asked] == ["quotes", "listmembers", "contacts", "contacts"]  # by id first, then parents
    assert gather("incident", "incidents", "incidentid", {T: case(T)},
                  lambda *a: [{"incidentid": "k", "_parentcaseid_value": T}]).child_cases == {T: 1}


# -- predictions agree with the emulator's Merge (the step 4 comparison, in-process) ----------------------------
def _emulator_outcome(setup, parenting: bool = True) -> tuple[tuple[Finding, ...], str]:
    """Run a scenario through check_merge and through the emulator's Merge: (predicted findings, failure class)."""
    from dataverse_emulator.context import Context
    from dataverse_emulator.errors import ServiceError
    from dataverse_emulator.merge import merge
    from dataverse_emulator.options import EmulatorOptions, Faults
    from dataverse_emulator.store import Ref, Store
    from merging.failure_classes import classify

    store = Store()
    entity, target, sub, update, ctx = setup(store, Ref)
    rows = {rid: _as_row(entity, store.get(entity, rid)) for rid in (target, sub)}
    after = {**rows[target], **update}
    predicted = check_merge(entity, after, rows[sub], ctx, target_before=rows[target])
    body = {"Target": {"@odata.type": f"Microsoft.Dynamics.CRM.{entity}", f"{entity}id": target},
            "Subordinate": {"@odata.type": f"Microsoft.Dynamics.CRM.{entity}", f"{entity}id": sub},
            "UpdateContent": {"@odata.type": f"Microsoft.Dynamics.CRM.{entity}",
                              **{f"{k[1:-6]}@odata.bind": f"/{entity}s({v})" for k, v in update.items()}},
            "PerformParentingChecks": parenting}
    options = EmulatorOptions(dataset="empty", faults=Faults(marketing_plugin=True))
    try:
        merge(Context(store, options, "", "http://localhost/api/data/v9.2/"), body)
    except ServiceError as exc:
        return predicted, classify(exc.status, exc.code, exc.message)[0]
    return predicted, ""


def _as_row(entity: str, record: dict) -> dict:
    """A store record as a Web API row: lookups as `_x_value` ids."""
    row = {}
    for k, v in record.items():
        row[f"_{k}_value" if isinstance(v, tuple) else k] = v.id if isinstance(v, tuple) else v
    return row


_CLASS = {"parenting_differs": "parenting", "parent_lost": "parenting", "marketing_list": "marketing_plugin"}


def _scenarios():
    def clean(store, ref):
        a = store.insert("contact", {"lastname": "A"})
        return "contact", a, store.insert("contact", {"lastname": "B"}), {}, NONE

    def parents_differ(store, ref):
        p, q = store.insert("account", {"name": "P"}), store.insert("account", {"name": "Q"})
        a = store.insert("contact", {"parentcustomerid": ref("account", p)})
        b = store.insert("contact", {"parentcustomerid": ref("account", q)})
        return "contact", a, b, {}, NONE

    def parent_lost(store, ref):
        p = store.insert("account", {"name": "P"})
        a, b = store.insert("account", {"name": "A"}), store.insert("account", {"parentaccountid": ref("account", p)})
        return "account", a, b, {}, NONE

    def active_quote(store, ref):
        a, b = store.insert("contact", {}), store.insert("contact", {})
        store.insert("quote", {"customerid": ref("contact", b), "statecode": 1})
        store.insert("quote", {"customerid": ref("contact", a), "statecode": 1})
        return "contact", a, b, {}, PreflightData(active_quotes={b: 1, a: 1})

    def inactive(store, ref):
        a, b = store.insert("contact", {}), store.insert("contact", {"statecode": 1, "statuscode": 2})
        return "contact", a, b, {}, NONE

    def loop(store, ref):  # accounts A <- B <- C; C's parent B is copied onto A
        a = store.insert("account", {"name": "A"})
        b = store.insert("account", {"name": "B", "parentaccountid": ref("account", a)})
        c = store.insert("account", {"name": "C", "parentaccountid": ref("account", b)})
        return "account", a, c, {"_parentaccountid_value": b}, PreflightData(parents={a: None, b: a, c: b})

    def marketing(store, ref):
        a, b = store.insert("contact", {}), store.insert("contact", {})
        lst = store.insert("list", {"listname": "News", "type": False})
        store.insert("listmember", {"listid": ref("list", lst), "entityid": ref("contact", b)})
        return "contact", a, b, {}, PreflightData(list_memberships={b: 1})

    return [clean, parents_differ, parent_lost, active_quote, inactive, loop, marketing]


@pytest.mark.parametrize("setup", _scenarios(), ids=lambda f: f.__name__)
def test_predictions_match_the_emulator(setup) -> None:
    predicted, outcome = _emulator_outcome(setup)
    blocking = [f for f in predicted if would_fail(f, parenting_checks=True, marketing_plugin=True)]
    if not blocking:
        assert outcome == ""
    else:  # the service stops at its first refusal: it must be one we predicted
        assert outcome in {_CLASS.get(f.code, f.code) for f in blocking}
