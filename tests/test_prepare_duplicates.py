"""prepare_duplicates: the default merge rules, the article's customisations, plan_group, and run()."""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import prepare_duplicates as prep
from dataverse import AttributeMetadata, EntityMetadata
from dataverse_emulator.schema import SCHEMA
from errors import DataverseError, RunStateError
from planning.preflight import PreflightData
from runfolder.folder import RunFolder
from runfolder.state import MERGES_CSV_COLUMNS, DuplicateGroups, Group

LT = "@Microsoft.Dynamics.CRM.lookuplogicalname"
NAV = "@Microsoft.Dynamics.CRM.associatednavigationproperty"
FMT = "@OData.Community.Display.V1.FormattedValue"
T, S1, S2 = (f"00000000-0000-0000-0000-00000000000{c}" for c in "abc")
ACC, ACC2, X = (f"00000000-0000-0000-0000-0000000000{c}" for c in ("e1", "e2", "f1"))


def meta(name: str) -> EntityMetadata:
    """The emulator's table as the client's metadata."""
    e = SCHEMA[name]
    attrs = {a.name: AttributeMetadata(a.name, a.type, a.updatable, a.readable, a.attribute_of, a.targets)
             for a in e.attrs.values()}
    return EntityMetadata(e.name, e.set_name, e.primary_id, e.primary_name, e.object_type_code, attrs)


CONTACT = meta("contact")


def contact(rid: str, created: str = "2020-01-01T00:00:00Z", **cols: Any) -> dict[str, Any]:
    return {"@odata.etag": 'W/"1"', "contactid": rid, "createdon": created, "modifiedon": "2024-01-01T00:00:00Z",
            "statecode": 0, "statuscode": 1, **cols}


def with_parent(record: dict[str, Any], account_id: str, name: str = "Contoso") -> dict[str, Any]:
    col = "_parentcustomerid_value"
    return {**record, col: account_id, col + LT: "account", col + NAV: "parentcustomerid_account", col + FMT: name}


def entity_set(table: str) -> str | None:
    return {"account": "accounts", "contact": "contacts"}.get(table)


def merge_result(target: dict, sub: dict) -> dict:
    return prep._create_merge_result(dict(target), dict(sub), sorted(target.keys() | sub.keys()))


# -- the default rules, one table each ------------------------------------------------------------------------
@pytest.mark.parametrize(("target", "sub", "expected"), [
    ({"firstname": None}, {"firstname": "Ann"}, {"firstname": "Ann"}),           # target empty: take it
    ({"firstname": "Ann"}, {"firstname": None}, {}),                              # subordinate empty: nothing
    ({"jobtitle": "CEO"}, {"jobtitle": "Chair"}, {"jobtitle": "Chair"}),          # anything else: subordinate's
    ({"jobtitle": "CEO"}, {"jobtitle": "CEO"}, {}),
])
def test_default_fill_and_other_fields(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


E = ("emailaddress1", "emailaddress2", "emailaddress3")


@pytest.mark.parametrize(("target", "sub", "expected"), [
    ({E[0]: "a@x.com"}, {E[0]: "b@x.com"}, {E[1]: "b@x.com"}),
    ({E[0]: "a@x.com", E[1]: "c@x.com"}, {E[0]: "b@x.com"}, {E[2]: "b@x.com"}),
    ({E[0]: "a@x.com", E[1]: "c@x.com", E[2]: "d@x.com"}, {E[0]: "b@x.com"}, {}),
    ({E[0]: "A@X.com"}, {E[0]: "a@x.com"}, {}),                                  # same email, other case
    ({E[0]: "a@x.com", E[2]: "B@x.com"}, {E[0]: "b@x.com"}, {}),                 # already in a slot
    ({E[0]: None}, {E[0]: "b@x.com"}, {E[0]: "b@x.com"}),                        # target has none
    ({E[0]: "a@x.com"}, {E[0]: "b@x.com", E[1]: "c@x.com"}, {E[1]: "b@x.com", E[2]: "c@x.com"}),
])
def test_default_emails(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


@pytest.mark.parametrize(("target", "sub", "expected"), [
    ({"telephone1": "020 7946 0000"}, {"telephone1": "0161 496 0000"}, {"telephone2": "0161 496 0000"}),
    ({"telephone1": "020 7946 0000", "telephone2": "1"}, {"telephone1": "2"}, {"telephone3": "2"}),
    ({"telephone1": "020 7946 0000"}, {"telephone1": "(020) 7946-0000"}, {}),     # same digits
    ({"telephone1": None}, {"telephone1": "2"}, {"telephone1": "2"}),
])
def test_default_phones(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


@pytest.mark.parametrize(("target", "sub", "expected"), [
    ({"donotemail": False}, {"donotemail": True}, {"donotemail": True}),
    ({"donotemail": True}, {"donotemail": False}, {}),                            # Yes wins
    ({"new_isvip": None}, {"new_isvip": False}, {"new_isvip": False}),            # custom flag, empty target
    ({"new_ismember": False}, {"new_ismember": True}, {"new_ismember": True}),
])
def test_default_booleans(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


def a1(**parts: str | None) -> dict:
    return {f"address1_{k}": v for k, v in parts.items()}


@pytest.mark.parametrize(("target", "sub", "expected"), [
    (a1(line1="1 High St", postalcode="SW1A 1AA"), a1(city="London", postalcode="sw1a1aa"),
     {"address1_city": "London"}),                                                 # same postcode: fill parts
    (a1(line1="1 High St", postalcode="SW1A 1AA"), a1(line1="9 Low Rd", postalcode="LS1 1AA"),
     {"address2_line1": "9 Low Rd", "address2_postalcode": "LS1 1AA"}),           # different: to address2
    ({**a1(line1="1 High St", postalcode="SW1A 1AA"), "address2_city": "York"}, a1(line1="9 Low Rd",
                                                                                  postalcode="LS1 1AA"), {}),
    ({}, a1(line1="9 Low Rd", city="Leeds"), {"address1_line1": "9 Low Rd", "address1_city": "Leeds"}),
    (a1(line1="1 High St"), {"address2_line1": "2 Side St"}, {"address2_line1": "2 Side St"}),
])
def test_default_addresses(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


# -- the article's customisations, as commented in the user part, compile and run ----------------------------
def example(name: str) -> str:
    source = inspect.getsource(prep)
    match = re.search(rf"# --- example: {re.escape(name)}\n(.*?)# --- end", source, re.S)
    assert match, f"example '{name}' is missing from prepare_duplicates.py"
    lines = [re.sub(r"^(\s*)# ?", r"\1", line) for line in match.group(1).splitlines()]
    return textwrap.dedent("\n".join(lines))


def loop_rule(body: str) -> Any:
    """A merge function whose per-column loop is the example (as the user would paste it in)."""
    code = ("def rule(target_row, subordinate_row, columns):\n    result = {}\n    for col in columns:\n"
            "        subordinate_val = subordinate_row.get(col)\n" + textwrap.indent(body, " " * 8)
            + "\n    return result\n")
    namespace = dict(vars(prep))
    exec(compile(code, "<example>", "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace["rule"]


def test_example_third_email_slot() -> None:
    rule = loop_rule(example("third email slot"))
    assert rule({E[0]: "a@x.com", E[1]: None}, {E[0]: "b@x.com"}, [E[0]]) == {E[1]: "b@x.com"}
    assert rule({E[0]: "a@x.com", E[1]: "c@x.com", E[2]: None}, {E[0]: "b@x.com"}, [E[0]]) == {E[2]: "b@x.com"}


def test_example_newer_wins_by_date() -> None:
    rule = loop_rule(example("newer wins by a date field"))
    col, date = "preferredcontactmethodcode", "new_lastcontacteddate"
    target = {col: 1, date: "2024-01-01T00:00:00Z"}
    assert rule(target, {col: 2, date: "2024-06-01T00:00:00Z"}, [col]) == {col: 2}
    assert rule(target, {col: 2, date: "2023-06-01T00:00:00Z"}, [col]) == {}


def test_example_address_completeness() -> None:
    code = ("def rule(target_row, subordinate_row, columns):\n    result = {'kept': True}\n"
            + textwrap.indent(example("address completeness"), "    ") + "\n    return {}\n")
    namespace = dict(vars(prep))
    exec(compile(code, "<example>", "exec"), namespace)  # noqa: S102
    assert namespace["rule"]({}, a1(line1="1 High St", city="Leeds"), []) == {"kept": True}
    assert namespace["rule"]({}, a1(line1="1 High St", city="Leeds", postalcode="LS1"), []) == {}


def test_example_own_target_strategy() -> None:
    namespace = dict(vars(prep))
    exec(compile(example("own target strategy"), "<example>", "exec"), namespace)  # noqa: S102
    try:
        chosen = prep.get_strategy("most_emails")([contact(T, emailaddress1="a"), contact(S1, emailaddress1="a",
                                                                                          emailaddress2="b")])
        assert chosen["contactid"] == S1
    finally:
        prep.register_strategy("most_emails")(prep.get_strategy("oldest_record"))
        from planning import targets
        targets.STRATEGIES.pop("most_emails")


# -- plan_group ------------------------------------------------------------------------------------------------
def plan(records: list[dict], **kw: Any):
    kw.setdefault("resolve_set", entity_set)
    return prep.plan_group(T, records, kw.pop("meta", CONTACT), **kw)


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
    newest = prep.plan_group(T, [contact(T, same), contact(S1, "2021-01-01T00:00:00Z")], CONTACT, "newest_record")
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
    merges, _ = prep.plan_group(T, records, account, resolve_set=entity_set)
    assert merges[0].update_content == {"@odata.type": "Microsoft.Dynamics.CRM.account",
                                        "parentaccountid@odata.bind": f"/accounts({ACC})"}


@pytest.mark.parametrize("resolver", [None, lambda table: None])
def test_an_unresolvable_lookup_is_dropped_with_a_warning(resolver: Any) -> None:
    merges, _ = plan([contact(T), with_parent(contact(S1, "2021-01-01T00:00:00Z"), ACC)], resolve_set=resolver)
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
    keep_parent = prep.plan_group(T, [target, sub], CONTACT, resolve_set=entity_set, preflight=checks,
                                  merge_fn=lambda t, s, c: {})
    assert [f.code for f in keep_parent[0][0].preflight] == ["parenting_differs", "active_quote"]
    takes_parent = prep.plan_group(T, [target, sub], CONTACT, resolve_set=entity_set, preflight=checks)
    # taking the subordinate's parent does not avoid the check: it compares the records before the merge
    assert [f.code for f in takes_parent[0][0].preflight] == ["parenting_differs", "active_quote"]


def test_cases_warn_that_update_content_is_ignored() -> None:
    records = [{"incidentid": T, "createdon": "2020-01-01T00:00:00Z", "title": "Broken"},
               {"incidentid": S1, "createdon": "2021-01-01T00:00:00Z", "title": "Broken!"}]
    merges, audits = prep.plan_group(T, records, meta("incident"), preflight=PreflightData())
    assert [f.code for f in merges[0].preflight] == ["update_ignored"]
    assert audits[0].target_after_merge["title"] == "Broken"


# -- run(): a run folder on tmp_path and a fake client -------------------------------------------------------
class FakeClient:
    """entity(), get_many(), get_all() over canned rows; records what was asked."""

    def __init__(self, tables: dict[str, list[dict]], missing: Iterable[str] = ()) -> None:
        self.tables, self.missing, self.calls = tables, set(missing), []

    def entity(self, name: str) -> EntityMetadata:
        if name not in SCHEMA:
            raise DataverseError(f"There is no table named '{name}'.", status=404)
        return meta(name)

    def get_many(self, entity_set: str, id_column: str, ids: Iterable[str], select: Iterable[str] = (), *,
                 annotations: bool = False, chunk_size: int = 250) -> Iterator[dict]:
        self.calls.append((entity_set, id_column))
        if entity_set in self.missing:
            raise DataverseError(f"Resource not found for the segment '{entity_set}'.", status=404)
        wanted = set(ids)
        return iter([r for r in self.tables.get(entity_set, []) if r.get(id_column) in wanted])

    def get_all(self, path: str, params: dict | None = None, *, annotations: bool = False) -> Iterator[dict]:
        return iter(self.tables.get(path, []))


def make_run(tmp_path: Path, groups: list[list[dict]], entity: str = "contact") -> RunFolder:
    run = RunFolder(tmp_path / "run")
    for records in groups:
        for r in records:
            run.write_record(r["contactid"], r)
    run.write_duplicate_groups(DuplicateGroups(
        job_id="job", entity=entity, pairs_read=3,
        groups=[Group(min(r["contactid"] for r in g), tuple(r["contactid"] for r in g)) for g in groups]))
    return run


G2T, G2S = "00000000-0000-0000-0000-0000000000d1", "00000000-0000-0000-0000-0000000000d2"


def scenario(tmp_path: Path) -> tuple[RunFolder, FakeClient]:
    run = make_run(tmp_path, [
        [contact(T, emailaddress1="a@x.com", _parentcustomerid_value=X),
         contact(S1, "2021-01-01T00:00:00Z", emailaddress1="b@x.com", telephone1="=1+1"),
         contact(S2, "2022-01-01T00:00:00Z", jobtitle="CEO")],
        [contact(G2T, jobtitle="Chair"), contact(G2S, "2021-01-01T00:00:00Z", jobtitle="CEO")],
    ])
    client = FakeClient({
        "quotes": [{"quoteid": "q1", "_customerid_value": S2, "statecode": 1},
                   {"quoteid": "q2", "_customerid_value": G2S, "statecode": 0}],
        "listmembers": [{"listmemberid": "m1", "_listid_value": "l1", "_entityid_value": G2S}],
        # the target's parent X (a contact) has S1 as its parent: after the merge X's parent is the target
        "contacts": [{"contactid": X, "_parentcustomerid_value": S1, "_parentcustomerid_value" + LT: "contact"}],
    })
    return run, client


def test_run_writes_the_preview(tmp_path: Path) -> None:
    run, client = scenario(tmp_path)
    result = prep.run(client, run, prep.PrepareSettings("contact"))
    assert (result.groups, result.merges, result.audit_files) == (2, 3, 3)
    rows = run.read_csv(run.merges_csv, MERGES_CSV_COLUMNS, "step 3")
    assert [(r["group_id"], r["order"], r["subordinate_id"]) for r in rows] == [(T, "1", S1), (T, "2", S2),
                                                                                (G2T, "1", G2S)]
    assert rows[0]["preflight"].startswith("hierarchy_loop: Loop exists in the contacts hierarchy.")
    # S1's merge will be refused, so S2's is planned without it: S1 stays a record of its own, no loop
    assert rows[1]["preflight"] == "active_quote: Merge cannot be performed on sub-entity that has active quote."
    assert rows[2]["preflight"].startswith("marketing_list: The subordinate is in 1 marketing list")
    assert '"telephone1":"=1+1"' in rows[0]["update_content"]          # exact in merges.csv
    assert result.preflight_counts == {"active_quote": 1, "hierarchy_loop": 1, "marketing_list": 1}
    assert result.flagged == 3 and ("jobtitle", 2) in result.top_changed_fields
    audit = (run.audit_dir / f"{S1}.csv").read_bytes()
    assert audit.startswith("\ufeff".encode()) and b"'=1+1" in audit               # neutralised in the audit
    assert sorted(p.name for p in run.audit_dir.iterdir()) == sorted(f"{i}.csv" for i in (S1, S2, G2S))
    lines = prep.summary_lines(result)
    assert lines[0] == "3 merges planned in 2 groups of contact records." and any("jobtitle (2)" in x for x in lines)
    assert ("contacts", "contactid") in client.calls  # the parent chain was fetched in bulk


def test_rerun_replaces_the_prepare_folder(tmp_path: Path) -> None:
    run, client = scenario(tmp_path)
    stale = run.audit_dir / "00000000-0000-0000-0000-000000000999.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("old", encoding="utf-8")
    prep.run(client, run, prep.PrepareSettings("contact"))
    assert not stale.exists() and run.merges_csv.exists()


def test_a_table_the_org_lacks_skips_its_check(tmp_path: Path) -> None:
    run, client = scenario(tmp_path)
    client.missing.add("quotes")
    result = prep.run(client, run, prep.PrepareSettings("contact"))
    assert "active_quote" not in result.preflight_counts


def test_entity_mismatch_names_the_file_and_both_entities(tmp_path: Path) -> None:
    run, client = scenario(tmp_path)
    with pytest.raises(RunStateError) as err:
        prep.run(client, run, prep.PrepareSettings("account"))
    text = str(err.value)
    assert "duplicate_groups.json" in text and "contact" in text and "account" in text


def test_a_missing_record_file_says_to_rerun_step_2(tmp_path: Path) -> None:
    run, client = scenario(tmp_path)
    run.record_path(S2).unlink()
    with pytest.raises(RunStateError) as err:
        prep.run(client, run, prep.PrepareSettings("contact"))
    assert f"{S2}.json" in str(err.value) and "step 2" in str(err.value)
    assert not run.prepare_dir.exists()  # nothing half-written


def test_an_unknown_strategy_is_refused_before_any_work(tmp_path: Path) -> None:
    run, client = scenario(tmp_path)
    with pytest.raises(Exception, match="eldest"):
        prep.run(client, run, prep.PrepareSettings("contact", target_strategy="eldest"))
    assert client.calls == []


def test_default_rule_never_mixes_two_addresses() -> None:
    target = {"address1_line1": "1 Mall", "address1_city": "London", "address1_postalcode": "SW1A 1AA"}
    sub = {"address1_line1": "2 Rue", "address1_city": "Paris", "address1_postalcode": "75001",
           "address1_county": "Ile-de-France", "address1_latitude": 48.8, "address3_city": "Lyon"}
    columns = sorted(set(target) | set(sub) | {"address2_county", "address2_latitude"})
    result = prep._create_merge_result(dict(target), dict(sub), columns)
    assert not any(c.startswith("address1_") for c in result)
    assert result["address2_county"] == "Ile-de-France" and result["address2_latitude"] == 48.8
    assert result["address3_city"] == "Lyon"       # an empty address3 on the target is filled


def test_columns_a_rule_returns_that_cannot_be_written_are_reported(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run, client = scenario(tmp_path)

    def rule(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        return {"parentcustomerid": "x", "createdon": "2020-01-01T00:00:00Z", "jobtitle": "CTO"}

    monkeypatch.setattr(prep, "_create_merge_result", rule)
    result = prep.run(client, run, prep.PrepareSettings("contact"))
    assert dict(result.not_written) == {"parentcustomerid": 3, "createdon": 3}
    assert any(line.startswith("Not written") and "parentcustomerid (3)" in line for line in prep.summary_lines(result))


def test_an_error_in_the_merge_logic_names_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from planning.planner import MergeLogicError

    run, client = scenario(tmp_path)

    def broken(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        return {"x": subordinate_row["no_such_column"]}

    monkeypatch.setattr(prep, "_create_merge_result", broken)
    with pytest.raises(MergeLogicError, match=r"failed for subordinate .*KeyError: 'no_such_column'"):
        prep.run(client, run, prep.PrepareSettings("contact"))
    assert not run.prepare_dir.exists()        # nothing half-written


def test_a_syntax_error_in_prepare_duplicates_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from errors import UsageError
    from ui import workflow

    def reload(module: object) -> object:
        raise SyntaxError("invalid syntax", ("prepare_duplicates.py", 42, 1, "if x"))

    monkeypatch.setattr(importlib, "reload", reload)
    with pytest.raises(UsageError, match="syntax error at line 42"):
        workflow.load_merge_logic()


def test_empty_columns_read_as_none_and_do_not_change_the_plan(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Record files list every column, most of them null; step 3 keeps only the filled ones. The merge
    logic still reads an empty column as None (row[col] too), and a name that is no column raises."""
    seen: list[tuple[Any, Any, bool]] = []
    default = prep._create_merge_result

    def logic(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        seen.append((target_row["emailaddress2"], subordinate_row.get("telephone3"), "emailaddress2" in columns))
        return default(target_row, subordinate_row, columns)

    monkeypatch.setattr(prep, "_create_merge_result", logic)
    nulls = {"emailaddress2": None, "telephone3": None, "jobtitle": None, "address2_city": None}
    outputs = []
    for name, extra in (("sparse", {}), ("with_nulls", nulls)):
        run = make_run(tmp_path / name, [[contact(T, emailaddress1="a@x.com", **extra),
                                          contact(S1, "2021-01-01T00:00:00Z", emailaddress1="b@x.com", **extra)]])
        prep.run(FakeClient({}), run, prep.PrepareSettings("contact"))
        rows = run.read_csv(run.merges_csv, MERGES_CSV_COLUMNS, "step 3")
        outputs.append(([dict(r) for r in rows],
                        (run.audit_dir / f"{S1}.csv").read_bytes()))
    assert outputs[0] == outputs[1]
    assert seen == [(None, None, False), (None, None, False)]
    assert '"emailaddress2":"b@x.com"' in outputs[0][0][0]["update_content"]

    def typo(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        return {"emailaddress2": subordinate_row["emailadress1"]}

    monkeypatch.setattr(prep, "_create_merge_result", typo)
    run = make_run(tmp_path / "typo", [[contact(T), contact(S1, "2021-01-01T00:00:00Z")]])
    from planning.planner import MergeLogicError

    with pytest.raises(MergeLogicError, match="KeyError: 'emailadress1'"):
        prep.run(FakeClient({}), run, prep.PrepareSettings("contact"))
