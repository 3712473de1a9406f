"""targets: each strategy, ties, missing dates, the registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from errors import UsageError
from planning import targets
from planning.targets import (
    STRATEGIES,
    filled_columns,
    get_strategy,
    most_complete,
    most_recently_modified,
    newest_record,
    oldest_record,
    parse_when,
    register_strategy,
)


def rec(rid: str, created: str | None = None, modified: str | None = None, **cols: object) -> dict:
    return {"contactid": rid, "createdon": created, "modifiedon": modified, **cols}


A = rec("a", "2021-03-01T10:00:00Z", "2024-01-01T00:00:00Z")
B = rec("b", "2020-06-15T08:30:00Z", "2024-05-01T00:00:00Z")
C = rec("c", "2022-11-30T23:59:59Z", "2023-01-01T00:00:00Z")


@pytest.mark.parametrize(("strategy", "records", "expected"), [
    (oldest_record, [A, B, C], "b"),
    (newest_record, [A, B, C], "c"),
    (most_recently_modified, [A, B, C], "b"),
    # ties: the record listed first (plan_group lists by id, so: the smaller id)
    (oldest_record, [rec("a", "2020-01-01T00:00:00Z"), rec("b", "2020-01-01T00:00:00Z")], "a"),
    (newest_record, [rec("a", "2020-01-01T00:00:00Z"), rec("b", "2020-01-01T00:00:00Z")], "a"),
    (most_recently_modified, [rec("a", modified="2020-01-01T00:00:00Z"), rec("b", modified="2020-01-01T00:00:00Z")],
     "a"),
    # missing or unusable createdon never wins on the date
    (oldest_record, [rec("a", None), rec("b", "2023-01-01T00:00:00Z"), rec("c", "not a date")], "b"),
    (newest_record, [rec("a", None), rec("b", "2019-01-01T00:00:00Z")], "b"),
    (oldest_record, [rec("a", None), rec("b", None)], "a"),
    # the same instant written with an offset
    (oldest_record, [rec("a", "2020-01-01T01:00:00+01:00"), rec("b", "2020-01-01T00:30:00Z")], "a"),
    (oldest_record, [rec("only", "2020-01-01T00:00:00Z")], "only"),
])
def test_date_strategies(strategy, records: list[dict], expected: str) -> None:
    assert strategy(records)["contactid"] == expected


def test_most_complete_counts_business_columns_only() -> None:
    sparse = rec("a", "2020-01-01T00:00:00Z", "2024-01-01T00:00:00Z", firstname="Ann", versionnumber=5,
                 statecode=0, _ownerid_value="u1", address1_composite="1 High St London")
    full = rec("b", firstname="Ann", lastname="Lee", emailaddress1="ann@example.com")
    full["emailaddress1@OData.Community.Display.V1.FormattedValue"] = "ann@example.com"
    assert filled_columns(sparse) == 2  # contactid, firstname
    assert filled_columns(full) == 4
    assert most_complete([sparse, full])["contactid"] == "b"
    blank = rec("c", firstname="  ", lastname="", donotemail=False, numberofchildren=0)
    assert filled_columns(blank) == 3  # contactid, and False and 0 are values
    assert most_complete([rec("x", firstname="A"), rec("y", lastname="B")])["contactid"] == "x"  # tie: first


def test_registry_has_the_built_ins_and_takes_your_own() -> None:
    assert {"oldest_record", "newest_record", "most_complete", "most_recently_modified"} <= set(STRATEGIES)
    assert get_strategy("oldest_record") is oldest_record
    try:
        @register_strategy("test_last_listed")
        def last_listed(records: list[dict]) -> dict:
            return records[-1]

        assert get_strategy("test_last_listed")([A, B])["contactid"] == "b"
    finally:
        targets.STRATEGIES.pop("test_last_listed", None)


def test_unknown_strategy_names_the_choices() -> None:
    with pytest.raises(UsageError) as err:
        get_strategy("eldest")
    assert "eldest" in str(err.value) and "oldest_record" in str(err.value)


def test_empty_group_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        oldest_record([])


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),       # naive: read as UTC
    ("2024-05-01T10:00:00.1234567Z", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ("", None), (None, None), ("yesterday", None), (20240501, None),
])
def test_parse_when(text: object, expected: datetime | None) -> None:
    assert parse_when(text) == expected
