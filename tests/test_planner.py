"""planning/planner.py: one group's merges (target, order, UpdateContent, lookups, pre-flight, audit rows),
the strict rows the merge logic reads, and the proof that planning asks Dataverse nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest
from builders import ACC, ACC2, CONTACT, ENTITY_SETS, S1, S2, T, X, contact, meta, with_parent

import prepare_duplicates as prep
from dataverse import EntityMetadata
from planning.audit_files import AuditRows
from planning.planner import MergeFn, Planner, Row
from planning.preflight import PreflightData
from planning.targets import get_strategy
from runfolder.state import PlannedMerge


def plan_group(records: list[dict], meta: EntityMetadata = CONTACT, strategy: str = "oldest_record", *,
               merge_fn: MergeFn = prep._create_merge_result, ignore: Iterable[str] = prep.fields_to_ignore,
               entity_sets: Mapping[str, str] = ENTITY_SETS, preflight: PreflightData | None = None,
               ) -> tuple[list[PlannedMerge], list[AuditRows]]:
    planner = Planner(meta, merge_fn, ignore, entity_sets, preflight)
    return planner.plan(T, records, get_strategy(strategy))


plan = plan_group


def test_later_subordinates_see_earlier_merges() -> None:
    records = [contact(S2, "2022-01-01T00:00:00Z", emailaddress1="c@x.com"),
               contact(T, "2019-01-01T00:00:00Z", emailaddress1="a@x.com"),
               contact(S1, "2021-01-01T00:00:00Z", emailaddress1="b@x.com", jobtitle="CEO")]
    merges, audits = plan(records)
    assert [(m.order, m.target_id, m.subordinate_id) for m in merges] == [(1, T, S1), (2, T, S2)]
    assert merges[0].update_content == {"@odata.type": "Microsoft.Dynamics.CRM.contact",
                                        "emailaddress2": "b@x.com", "jobtitle": "CEO"}
    assert merges[1].update_content == {"@odata.type": "Microsoft.Dynamics.CRM.contact", "emailaddress3": "c@x.com"}
    assert audits[1].target == audits[0].target_after_merge  # the second merge starts where the first ends
    assert audits[1].target_after_merge["jobtitle"] == "CEO"
    assert merges[0].changed_fields == ("emailaddress2", "jobtitle")
    assert (merges[0].target_modifiedon, merges[0].subordinate_modifiedon) == ("2024-01-01T00:00:00Z",) * 2


def test_target_ties_go_to_the_smaller_id_whatever_the_order() -> None:
    same = "2020-01-01T00:00:00Z"
    for records in ([contact(S1, same), contact(T, same)], [contact(T, same), contact(S1, same)]):
        assert plan(records)[0][0].target_id == T
    newest = plan_group([contact(T, same), contact(S1, "2021-01-01T00:00:00Z")], CONTACT, "newest_record")
    assert newest[0][0].target_id == S1


def test_subordinates_merge_oldest_first_then_by_id_missing_date_last() -> None:
    records = [contact(T, "2019-01-01T00:00:00Z"), contact(S2, "2020-01-01T00:00:00Z"),
               contact(S1, "2020-01-01T00:00:00Z"), contact(X, None)]
    assert [m.subordinate_id for m in plan(records)[0]] == [S1, S2, X]


def test_ignored_and_not_updatable_columns_are_never_written() -> None:
    def take_everything(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        return {**subordinate_row, "address1_composite": "x", "unknowncol": 1, "@odata.etag": "W/2",
                "_ownerid_value": X, "jobtitle@OData.Community.Display.V1.FormattedValue": "CEO"}

    sub = contact(S1, "2021-01-01T00:00:00Z", fullname="Ann Lee", versionnumber=9, jobtitle="CEO", merged=False)
    merges, _ = plan([contact(T), sub], merge_fn=take_everything, ignore=[*prep.fields_to_ignore, "jobtitle"])
    assert merges[0].update_content == {"@odata.type": "Microsoft.Dynamics.CRM.contact"}
    assert merges[0].changed_fields == ()


def test_lookups_are_written_as_odata_bind_never_as_value_columns() -> None:
    merges, audits = plan([contact(T), with_parent(contact(S1, "2021-01-01T00:00:00Z"), ACC)])
    update = merges[0].update_content
    assert update["parentcustomerid_account@odata.bind"] == f"/accounts({ACC})"
    assert not [k for k in update if k.startswith("_")]
    assert merges[0].changed_fields == ("parentcustomerid",)
    assert audits[0].merge_function == {"_parentcustomerid_value": ACC, "_parentcustomerid_value@name": "Contoso"}
    assert audits[0].target_after_merge["_parentcustomerid_value@name"] == "Contoso"


def test_a_single_target_lookup_without_annotations_binds_through_metadata() -> None:
    account = meta("account")
    records = [{"accountid": T, "createdon": "2020-01-01T00:00:00Z"},
               {"accountid": S1, "createdon": "2021-01-01T00:00:00Z", "_parentaccountid_value": ACC}]
    merges, _ = plan_group(records, account)
    assert merges[0].update_content == {"@odata.type": "Microsoft.Dynamics.CRM.account",
                                        "parentaccountid@odata.bind": f"/accounts({ACC})"}


def test_an_unresolvable_lookup_is_dropped_with_a_warning() -> None:
    merges, _ = plan([contact(T), with_parent(contact(S1, "2021-01-01T00:00:00Z"), ACC)], entity_sets={})
    assert merges[0].update_content == {"@odata.type": "Microsoft.Dynamics.CRM.contact"}
    (finding,) = merges[0].preflight
    assert (finding.code, finding.severity) == ("lookup_dropped", "warn") and "parentcustomerid" in finding.message


def test_a_rule_cannot_clear_a_lookup_and_nan_means_empty() -> None:
    def clear(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        return {"_parentcustomerid_value": None, "jobtitle": float("nan"), "firstname": None}

    target = with_parent(contact(T, firstname="Ann", jobtitle="CEO"), ACC)
    merges, _ = plan([target, contact(S1, "2021-01-01T00:00:00Z")], merge_fn=clear)
    assert merges[0].update_content == {"@odata.type": "Microsoft.Dynamics.CRM.contact", "firstname": None}
    assert [f.code for f in merges[0].preflight] == ["lookup_dropped"]


def test_preflight_runs_on_the_target_as_the_merge_leaves_it() -> None:
    checks = PreflightData(active_quotes={S1: 1})
    target = with_parent(contact(T), ACC)
    sub = with_parent(contact(S1, "2021-01-01T00:00:00Z"), ACC2, "Fabrikam")
    keep_parent = plan_group([target, sub], CONTACT, preflight=checks, merge_fn=lambda t, s, c: {})
    assert [f.code for f in keep_parent[0][0].preflight] == ["parenting_differs", "active_quote"]
    takes_parent = plan_group([target, sub], CONTACT, preflight=checks)
    # taking the subordinate's parent does not avoid the check: it compares the records before the merge
    assert [f.code for f in takes_parent[0][0].preflight] == ["parenting_differs", "active_quote"]


def test_cases_warn_that_update_content_is_ignored() -> None:
    records = [{"incidentid": T, "createdon": "2020-01-01T00:00:00Z", "title": "Broken"},
               {"incidentid": S1, "createdon": "2021-01-01T00:00:00Z", "title": "Broken!"}]
    merges, audits = plan_group(records, meta("incident"), preflight=PreflightData())
    assert [f.code for f in merges[0].preflight] == ["update_ignored"]
    assert audits[0].target_after_merge["title"] == "Broken"


def test_a_row_refuses_a_name_that_is_no_column_with_get_too() -> None:
    row = Row({"emailaddress1": "a@x.com"}, frozenset({"emailaddress1", "emailaddress2"}))
    assert row["emailaddress2"] is None and row.get("emailaddress2") is None and row.get("emailaddress2", 1) == 1
    assert row.get("emailaddress1") == "a@x.com"
    with pytest.raises(KeyError, match="emailadress1"):
        row.get("emailadress1")
    with pytest.raises(KeyError, match="emailadress1"):
        row["emailadress1"]


def test_the_default_rule_runs_on_a_table_without_address2_or_3() -> None:
    lead = meta("lead")
    assert "address2_city" not in lead.attributes and "address3_city" not in lead.attributes
    records = [{"leadid": T, "createdon": "2020-01-01T00:00:00Z", "address1_city": "Leeds"},
               {"leadid": S1, "createdon": "2021-01-01T00:00:00Z", "address1_city": "York", "lastname": "Lee"}]
    merges, _ = plan_group(records, lead)  # the address would move to address2, which a lead lacks here
    assert merges[0].update_content == {"@odata.type": "Microsoft.Dynamics.CRM.lead", "lastname": "Lee"}
