"""planning/audit_files.py: the four-row audit CSVs (columns, BOM, neutralised cells) and their writer."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from planning.audit_files import (
    AUDIT_LABELS,
    AuditRows,
    AuditWriter,
    audit_columns,
    audit_csv_bytes,
    audit_file_name,
    audit_table,
    cell,
    neutralise,
)

SUB = "00000000-0000-0000-0000-0000000000b2"
FIRST = ["contactid", "fullname"]


def rows(sub_id: str = SUB) -> AuditRows:
    return AuditRows(
        subordinate_id=sub_id,
        subordinate={"contactid": sub_id, "fullname": "Ann Lee", "telephone1": "+44 20 7946 0000", "jobtitle": None,
                     "emailaddress1": "ann@x.com", "description": "=HYPERLINK(\"http://evil\")", "numberofkids": -2},
        target={"contactid": "t", "fullname": "Ann Lee", "emailaddress1": "ANN@x.com", "jobtitle": "",
                "donotemail": False, "_parentcustomerid_value": "acc", "_parentcustomerid_value@name": "Contoso"},
        merge_function={"telephone1": "+44 20 7946 0000", "description": "=HYPERLINK(\"http://evil\")"},
        target_after_merge={"contactid": "t", "fullname": "Ann Lee", "telephone1": "+44 20 7946 0000",
                            "emailaddress1": "ANN@x.com", "donotemail": False, "description": "-note",
                            "_parentcustomerid_value": "acc", "_parentcustomerid_value@name": "Contoso"},
    )


def test_columns_only_where_a_row_has_a_value_primary_first_then_alphabetical() -> None:
    columns = audit_columns(rows(), FIRST)
    assert columns[:2] == FIRST
    assert columns[2:] == sorted(columns[2:])
    assert "jobtitle" not in columns  # None on one row, "" on the other: no value anywhere
    assert {"donotemail", "numberofkids", "_parentcustomerid_value", "_parentcustomerid_value@name"} <= set(columns)


def test_four_labelled_rows() -> None:
    header, body = audit_table(rows(), FIRST)
    assert header[0] == "row" and [r[0] for r in body] == list(AUDIT_LABELS)
    assert all(len(r) == len(header) for r in body)
    by_label = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    assert by_label["merge_function"]["fullname"] == ""
    assert by_label["target"]["donotemail"] == "False"
    assert by_label["subordinate"]["numberofkids"] == "-2"          # a number is not a formula
    assert by_label["target"]["_parentcustomerid_value@name"] == "Contoso"


@pytest.mark.parametrize(("value", "shown"), [
    ("=1+1", "'=1+1"), ("+44 20", "'+44 20"), ("-note", "'-note"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("plain", "plain"), ("", ""), ("a=b", "a=b"),
    (None, ""), (True, "True"), (False, "False"), (-3, "-3"), (2.5, "2.5"), ({"a": "=x"}, '{"a": "=x"}'),
    ([1], "[1]"),
])
def test_cells_are_neutralised_for_spreadsheets(value: object, shown: str) -> None:
    assert cell(value) == shown
    if isinstance(value, str):
        assert neutralise(value) == shown


def test_csv_bytes_have_a_bom_and_read_back() -> None:
    header, body = audit_table(rows(), FIRST)
    data = audit_csv_bytes(header, body)
    assert data.startswith("\ufeff".encode()) and b"\r\n" in data
    back = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert back == [header, *body]
    description = header.index("description")
    assert back[1][description] == "'=HYPERLINK(\"http://evil\")"


@pytest.mark.parametrize("threads", [1, 8])
def test_writer_writes_one_file_per_subordinate(tmp_path: Path, threads: int) -> None:
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(7)]
    with AuditWriter(tmp_path / "audit_records", FIRST, threads=threads, batch_size=3) as writer:
        for sub_id in ids:
            writer.add(rows(sub_id))
    assert writer.written == 7
    assert sorted(p.name for p in (tmp_path / "audit_records").iterdir()) == [f"{i}.csv" for i in ids]
    data = (tmp_path / "audit_records" / f"{ids[3]}.csv").read_bytes()
    assert data == audit_csv_bytes(*audit_table(rows(ids[3]), FIRST))


def test_writer_refuses_an_id_that_is_not_a_file_name(tmp_path: Path) -> None:
    with AuditWriter(tmp_path) as writer, pytest.raises(ValueError):
        writer.add(rows("../escape"))
    for bad in ("", "a/b", ".hidden", "..", "/abs"):
        with pytest.raises(ValueError):
            audit_file_name(bad)
    assert audit_file_name(SUB) == f"{SUB}.csv"


@pytest.mark.parametrize("batch_size", [1, 64])
def test_writer_raises_a_write_error(tmp_path: Path, batch_size: int) -> None:
    """A file a writer thread cannot create fails the step (here, or at the latest on exit)."""
    (tmp_path / "audit" / f"{SUB}.csv").mkdir(parents=True)  # a folder where the file should go
    with pytest.raises(OSError), AuditWriter(tmp_path / "audit", batch_size=batch_size) as writer:
        for n in range(200):
            writer.add(rows(SUB if n == 0 else f"00000000-0000-0000-0000-{n:012d}"))
