"""runfolder/merges_csv.py: merges.csv as a spreadsheet brings it back. Accepted: the forms spreadsheets save
(BOM or not, ';' separators, CRLF, trailing empty rows, reformatted dates, deleted rows). Refused, row by row
and nothing selected: a one-column sort, swapped ids, pasted rows, changed orders or values, and text that went
through another encoding (with the fix: save as CSV UTF-8)."""

from __future__ import annotations

from pathlib import Path

import pytest
import spreadsheet as xl

from dataverse import Environment
from errors import PlanMismatchError, RunStateError
from runfolder.merges_csv import CELL_MAX, RowProblem, read_selection, update_cell, write_view
from runfolder.plan_file import Plan, PlanHeader, read_plan, write_plan
from runfolder.state import Finding, PlannedMerge, Severity

CONTACT = "Microsoft.Dynamics.CRM.contact"
TA, SA1, SA2, TB, SB1, TC, SC1 = (f"00000000-0000-0000-0000-00000000{n:04d}" for n in range(1, 8))
ENV = Environment("https://contoso.crm.dynamics.com/", "11111111-1111-1111-1111-111111111111")


def merges() -> list[PlannedMerge]:
    return [
        PlannedMerge(TA, 1, TA, SA1, {"@odata.type": CONTACT, "address1_city": "München", "telephone2": "+49 89 1"},
                     ("address1_city", "telephone2"), target_modifiedon="2024-03-05T10:00:00Z",
                     subordinate_modifiedon="2024-03-06T11:30:00Z", target_name="Anna Müller",
                     subordinate_name="=Anna Mueller"),
        PlannedMerge(TA, 2, TA, SA2, {"@odata.type": CONTACT, "address2_city": "Gdańsk", "jobtitle": "Директор"},
                     ("address2_city", "jobtitle"), (Finding("parent_lost", Severity.FAIL_IF_PARENTING, "lost"),),
                     target_name="Anna Müller", subordinate_name="A. Müller"),
        PlannedMerge(TB, 1, TB, SB1, {"@odata.type": CONTACT, "lastname": "O'Neil, \"Jr\""}, ("lastname",)),
        PlannedMerge(TC, 1, TC, SC1, {"@odata.type": CONTACT}, ()),
    ]


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[Path, Plan]:
    plan_path, view = tmp_path / "plan.jsonl", tmp_path / "merges.csv"
    write_plan(plan_path, PlanHeader.new("contact", ENV, "oldest_record"), merges())
    write_view(view, merges())
    return view, read_plan(plan_path)


def selection_after(prepared: tuple[Path, Plan], change: xl.Callable[[xl.Table], xl.Table], **save: object):
    view, plan = prepared
    xl.edit(view, change, **save)
    return read_selection(view, plan)


def refused(prepared: tuple[Path, Plan], change: xl.Callable[[xl.Table], xl.Table],
            **save: object) -> PlanMismatchError:
    with pytest.raises(PlanMismatchError) as info:
        selection_after(prepared, change, **save)
    return info.value


def test_the_view_opens_in_a_spreadsheet_as_utf8_and_neutralises_formulas(prepared: tuple[Path, Plan]) -> None:
    view, plan = prepared
    raw = view.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    table = xl.open_table(view)
    assert table[1][table[0].index("subordinate_name")] == "'=Anna Mueller"   # a name is not run as a formula
    assert "München" in table[1][table[0].index("update_content")]
    assert read_selection(view, plan).selected == {SA1, SA2, SB1, SC1}


@pytest.mark.parametrize("save", [
    {"encoding": "utf-8", "bom": True},                                      # Excel: CSV UTF-8
    {"encoding": "utf-8", "bom": False, "line_end": "\n"},                   # LibreOffice on Linux
    {"encoding": "utf-8", "bom": True, "sep": ";"},                          # a European locale
    {"encoding": "utf-8", "bom": False, "sep": "\t"},                        # tab-separated
    {"encoding": "utf-8", "bom": True, "quote_all": True, "trailing_empty_rows": 3},
])
def test_what_spreadsheets_save_is_read_back(prepared: tuple[Path, Plan], save: dict) -> None:
    change = xl.reformat_dates("target_modifiedon", "subordinate_modifiedon")
    assert selection_after(prepared, change, **save).selected == {SA1, SA2, SB1, SC1}


def test_deleted_rows_leave_their_merges_out(prepared: tuple[Path, Plan]) -> None:
    selection = selection_after(prepared, xl.delete_rows(1, 4))
    assert selection.selected == {SA2, SB1}
    assert [m.subordinate_id for m in selection.left_out] == [SA1, SC1]


def test_a_one_column_sort_is_refused_row_by_row(prepared: tuple[Path, Plan]) -> None:
    error = refused(prepared, xl.sort_one_column("subordinate_id", descending=True))
    assert len(error.problems) == 4 and set(error.problems) <= {RowProblem.OTHER_TARGET, RowProblem.ORDER}
    assert any(row.startswith("row 2:") for row in error.rows)
    assert "nothing is merged" in error.message and "deleting rows is the one edit" in error.hint


def test_swapped_ids_a_pasted_row_and_a_changed_order_are_refused(prepared: tuple[Path, Plan]) -> None:
    def edits(table: xl.Table) -> xl.Table:
        table = xl.swap_cells(3, "target_id", "subordinate_id")(table)
        table = xl.set_cell(2, "order", "1")(table)
        pasted = list(table[4])
        pasted[xl.column(table, "subordinate_id")] = "00000000-0000-0000-0000-00000000ffff"
        return [*table, list(table[1]), pasted]

    error = refused(prepared, edits)
    assert error.problems == [RowProblem.ORDER, RowProblem.SWAPPED, RowProblem.REPEATED, RowProblem.NOT_IN_PLAN]
    assert error.rows[2].startswith("row 6: repeats row 2")


def test_an_edited_value_is_refused_values_come_from_step_3(prepared: tuple[Path, Plan]) -> None:
    view, plan = prepared
    table = xl.open_table(view)
    cell = table[3][xl.column(table, "update_content")].replace("O'Neil", "O'Neill")
    error = refused(prepared, xl.set_cell(3, "update_content", cell))
    assert error.problems == [RowProblem.VALUES] and "lastname" in error.rows[0] and "rerun step 3" in error.rows[0]


def test_mojibake_from_an_ansi_round_trip_is_refused_with_the_fix(prepared: tuple[Path, Plan]) -> None:
    view, plan = prepared
    view.write_bytes(view.read_bytes().removeprefix(b"\xef\xbb\xbf"))   # as round 1 wrote it: no BOM
    xl.as_ansi_then_utf8(view)
    with pytest.raises(PlanMismatchError) as info:
        read_selection(view, plan)
    assert RowProblem.ENCODING in info.value.problems and "CSV UTF-8" in info.value.hint
    assert any("MÃ¼nchen" in row for row in info.value.rows)


def test_an_ansi_save_is_refused_naming_the_row(prepared: tuple[Path, Plan]) -> None:
    with pytest.raises(PlanMismatchError, match=r"merges.csv row 2 is not UTF-8 text") as info:
        selection_after(prepared, lambda t: t, encoding="cp1252", bom=False)
    assert "CSV UTF-8" in info.value.hint


def test_an_ansi_save_that_lost_letters_is_refused_even_when_it_reads_as_ascii(prepared: tuple[Path, Plan]) -> None:
    view, plan = prepared
    table = xl.open_table(view)
    ascii_table = [table[0], table[2]]   # only the Gdańsk/Директор row: cp1252 turns them into '?'
    xl.save_table(view, ascii_table, encoding="ascii", bom=False)
    with pytest.raises(PlanMismatchError) as info:
        read_selection(view, plan)
    assert info.value.problems == [RowProblem.ENCODING]


def test_a_missing_header_or_file_is_named(prepared: tuple[Path, Plan]) -> None:
    view, plan = prepared
    with pytest.raises(PlanMismatchError, match="no header row"):
        selection_after(prepared, lambda t: t[1:])
    view.unlink()
    with pytest.raises(RunStateError, match="does not exist"):
        read_selection(view, plan)


def test_an_update_too_long_for_a_cell_round_trips_as_its_stand_in(tmp_path: Path) -> None:
    long = PlannedMerge(TA, 1, TA, SA1, {"@odata.type": CONTACT, "description": "x" * (CELL_MAX + 10)})
    write_plan(tmp_path / "plan.jsonl", PlanHeader.new("contact", ENV, "oldest_record"), [long])
    write_view(tmp_path / "merges.csv", [long])
    assert update_cell(long).startswith("(UpdateContent of") and len(update_cell(long)) < 200
    xl.edit(tmp_path / "merges.csv", lambda t: t)
    plan = read_plan(tmp_path / "plan.jsonl")
    assert read_selection(tmp_path / "merges.csv", plan).selected == {SA1}
    assert plan.merges[0].update_content["description"] == "x" * (CELL_MAX + 10)   # the value is the plan's


def test_a_hand_edited_plan_is_refused(prepared: tuple[Path, Plan], tmp_path: Path) -> None:
    path = tmp_path / "plan.jsonl"
    path.write_text(path.read_text(encoding="utf-8").replace("München", "Munich"), encoding="utf-8")
    with pytest.raises(RunStateError, match="changed after step 3 wrote it"):
        read_plan(path)


def test_json_spaced_another_way_is_the_same_values(prepared: tuple[Path, Plan]) -> None:
    # a merges.csv from a version that wrote its JSON with spaces still selects; other values do not
    view, plan = prepared
    table = xl.open_table(view)
    cell = table[3][xl.column(table, "update_content")]
    assert cell == update_cell(plan.merges[2])
    spaced = cell.replace('":"', '": "').replace('","', '", "')
    assert spaced != cell
    assert selection_after(prepared, xl.set_cell(3, "update_content", spaced)).selected == {SA1, SA2, SB1, SC1}
    error = refused(prepared, xl.set_cell(3, "update_content", spaced.replace("Neil", "Neill")))
    assert error.problems == [RowProblem.VALUES]


def test_what_orjson_cannot_write_is_written_by_the_standard_library(tmp_path: Path) -> None:
    huge = PlannedMerge(TA, 1, TA, SA1, {"@odata.type": CONTACT, "numberofemployees": 2**70})
    write_plan(tmp_path / "plan.jsonl", PlanHeader.new("contact", ENV, "oldest_record"), [huge])
    write_view(tmp_path / "merges.csv", [huge])
    plan = read_plan(tmp_path / "plan.jsonl")
    assert plan.merges[0].update_content["numberofemployees"] == 2**70
    assert read_selection(tmp_path / "merges.csv", plan).selected == {SA1}
