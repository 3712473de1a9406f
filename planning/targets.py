"""Which record of a duplicate group survives (the target): named, deterministic strategies.

A strategy takes the group's records (Web API JSON rows) and returns the one to keep. Ties go to the
record listed first; `prepare_duplicates.plan_group` lists records by id, so ties go to the smaller id
and the choice is the same on every run. A record with no usable date never wins on that date.

Add your own with the decorator, and choose it by name in step 3:

    @register_strategy("most_emails")
    def most_emails(records: list[dict]) -> dict:
        return max(records, key=lambda r: sum(bool(r.get(c)) for c in ("emailaddress1", "emailaddress2")))
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from errors import UsageError

Record = dict[str, Any]
Strategy = Callable[[list[Record]], Record]

STRATEGIES: dict[str, Strategy] = {}

# Columns every record has or the platform fills in: they say nothing about how complete a record is.
SYSTEM_COLUMNS = frozenset({
    "createdon", "modifiedon", "overriddencreatedon", "versionnumber", "statecode", "statuscode", "merged",
    "importsequencenumber", "timezoneruleversionnumber", "utcconversiontimezonecode", "exchangerate",
    "processid", "stageid", "traversedpath", "fullname", "yomifullname",
    "_createdby_value", "_modifiedby_value", "_createdonbehalfby_value", "_modifiedonbehalfby_value",
    "_ownerid_value", "_owninguser_value", "_owningteam_value", "_owningbusinessunit_value", "_masterid_value",
    "_transactioncurrencyid_value",
})

_NEVER = datetime.min.replace(tzinfo=UTC)


def register_strategy(name: str) -> Callable[[Strategy], Strategy]:
    """Decorator: make a strategy choosable by `name` (replaces one of the same name)."""

    def add(fn: Strategy) -> Strategy:
        STRATEGIES[name] = fn
        return fn

    return add


def get_strategy(name: str) -> Strategy:
    """The strategy registered under `name`; UsageError listing the known names otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise UsageError(f"There is no target selection called '{name}'.", f"Use one of: {known}.") from None


def parse_when(value: object) -> datetime | None:
    """An ISO-8601 date/time from the Web API ('2024-05-01T10:00:00Z') as an aware datetime; None if unusable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _earliest(records: list[Record], column: str) -> Record:
    # a missing date sorts after every real one; min() keeps the first of equals
    return min(records, key=lambda r: (parse_when(r.get(column)) is None, parse_when(r.get(column)) or _NEVER))


def _latest(records: list[Record], column: str) -> Record:
    # max() keeps the first of equals; a missing date is the smallest key
    return max(records, key=lambda r: parse_when(r.get(column)) or _NEVER)


def _require(records: list[Record]) -> None:
    if not records:
        raise ValueError("a target strategy needs at least one record")


@register_strategy("oldest_record")
def oldest_record(records: list[Record]) -> Record:
    """The record created first (earliest `createdon`)."""
    _require(records)
    return _earliest(records, "createdon")


@register_strategy("newest_record")
def newest_record(records: list[Record]) -> Record:
    """The record created last (latest `createdon`)."""
    _require(records)
    return _latest(records, "createdon")


@register_strategy("most_recently_modified")
def most_recently_modified(records: list[Record]) -> Record:
    """The record changed last (latest `modifiedon`)."""
    _require(records)
    return _latest(records, "modifiedon")


def filled_columns(record: Record) -> int:
    """How many business columns hold a value: annotations (`x@...`), SYSTEM_COLUMNS and computed
    `*_composite` columns do not count, nor do None and blank strings. False and 0 are values."""
    return sum(
        1
        for key, value in record.items()
        if "@" not in key
        and key not in SYSTEM_COLUMNS
        and not key.endswith("_composite")
        and value is not None
        and not (isinstance(value, str) and not value.strip())
    )


@register_strategy("most_complete")
def most_complete(records: list[Record]) -> Record:
    """The record with the most filled-in columns (see `filled_columns`)."""
    _require(records)
    return max(records, key=filled_columns)
