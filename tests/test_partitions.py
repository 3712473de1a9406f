"""Partition arithmetic without a server: SQL Server's GUID order, cutting a range where the ids are, and
splitting capped ranges again until every piece is under the cap."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from dataverse_emulator.guids import sql_guid_key
from planning.partitions import (
    KEY_SPACE,
    WHOLE,
    KeyRange,
    conditions,
    covers_exactly,
    guid_at,
    restrict,
    split,
    sql_key,
)

RNG = random.Random(16)


def random_ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=RNG.getrandbits(128), version=4)) for _ in range(n)]


def sequential_ids(n: int, start: int = 0x3A6FC65B) -> list[str]:
    """Ids the way Dataverse assigns them: the first group counts up, the last two groups stay (server, boot)."""
    return [f"{start + i:08x}-3f9c-e711-811c-000d3a75ce72" for i in range(n)]


def test_sql_key_orders_guids_as_sql_server_does() -> None:
    ids = random_ids(500) + sequential_ids(50) + ["00000000-0000-0000-0000-000000000000",
                                                    "ffffffff-ffff-ffff-ffff-ffffffffffff"]
    assert sorted(ids, key=sql_key) == sorted(ids, key=sql_guid_key)      # the emulator's (SqlGuid) order
    # the last group decides first, then the fourth; a first group's byte pairs count right to left
    order = ["01000000-0000-0000-0000-000000000000", "00000001-0000-0000-0000-000000000000",
             "00000000-0000-0000-0100-000000000000", "00000000-0000-0000-0000-010000000000"]
    assert sorted(order, key=sql_key) == order


def test_guid_at_is_the_inverse_of_sql_key() -> None:
    for guid in random_ids(200):
        assert guid_at(sql_key(guid)) == guid
    assert guid_at(0) == "00000000-0000-0000-0000-000000000000"
    assert guid_at(KEY_SPACE - 1) == "ffffffff-ffff-ffff-ffff-ffffffffffff"
    # a boundary that varies only in the last group sits at a round fraction of the key space
    assert sql_key("00000000-0000-0000-0000-400000000000") == KEY_SPACE // 4
    with pytest.raises(ValueError):
        guid_at(KEY_SPACE)


def test_quantile_cuts_balance_random_ids_and_cover_the_range() -> None:
    ids = random_ids(4000)
    pieces = split(WHOLE, ids, 4)
    assert len(pieces) == 4 and covers_exactly(pieces)
    counts = [sum(1 for i in ids if i in p) for p in pieces]
    assert sum(counts) == len(ids) and max(counts) - min(counts) <= 2
    assert pieces[0].lower is None and pieces[-1].upper is None


def test_sequential_ids_are_cut_where_they_are_not_at_fixed_points() -> None:
    ids = sequential_ids(4000)
    quarters = [KeyRange(None if q == 0 else guid_at(q * KEY_SPACE // 4),
                         None if q == 3 else guid_at((q + 1) * KEY_SPACE // 4)) for q in range(4)]
    assert sorted(sum(1 for i in ids if i in q) for q in quarters) == [0, 0, 0, 4000]   # fixed cuts: useless
    pieces = split(WHOLE, ids, 4)
    assert [sum(1 for i in ids if i in p) for p in pieces] == [1000] * 4


def test_a_piece_is_split_inside_its_own_bounds() -> None:
    ids = random_ids(3000)
    outer = split(WHOLE, ids, 4)[1]
    inner = split(outer, ids, 3)       # ids outside `outer` are ignored
    assert covers_exactly(inner, outer) and len(inner) == 3
    assert sum(1 for i in ids for p in inner if i in p) == sum(1 for i in ids if i in outer)


def test_degenerate_cases_still_make_progress() -> None:
    halves = split(WHOLE, [], 4)                         # nothing to cut between: halve the key space
    assert len(halves) == 2 and covers_exactly(halves) and halves[0].high_key == KEY_SPACE // 2
    one = random_ids(1)
    pieces = split(WHOLE, one, 4)
    assert len(pieces) == 2 and covers_exactly(pieces)
    assert len(split(WHOLE, random_ids(10), 1)) == 2      # at least two pieces, whatever `parts` says
    few = random_ids(3)
    assert covers_exactly(split(WHOLE, few, 8))           # more parts than ids: one cut per id at most
    single = KeyRange(guid_at(41), guid_at(42))
    with pytest.raises(ValueError, match="single id"):
        split(single, [guid_at(41)], 4)


@pytest.mark.parametrize("order", ["random", "key"])
def test_capped_ranges_split_again_until_none_is_capped(order: str) -> None:
    """A model of the service: a job over a range reports at most `cap` of the records with duplicates in it,
    either in no particular order or the lowest keys first. Splitting capped ranges again always ends with
    every record in exactly one uncapped range."""
    cap = 100
    duplicates = random_ids(1234) if order == "random" else sequential_ids(1234)
    shuffled = RNG.sample(duplicates, len(duplicates))

    def job(part: KeyRange) -> list[str]:
        inside = [d for d in shuffled if d in part]
        return (inside if order == "random" else sorted(inside, key=sql_key))[:cap]

    todo, done, jobs = [WHOLE], [], 0
    while todo:
        part = todo.pop(0)
        found = job(part)
        jobs += 1
        if len(found) >= cap:
            todo[:0] = split(part, found, 4)
        else:
            done.append(part)
    done.sort(key=lambda p: p.low_key)
    assert covers_exactly(done)
    assert sorted(d for p in done for d in job(p)) == sorted(duplicates)
    assert jobs < (60 if order == "random" else 120)


def test_conditions_and_the_restricted_query() -> None:
    part = KeyRange("00000000-0000-0000-0000-400000000000", "00000000-0000-0000-0000-800000000000")
    conds = conditions(part, "contactid")
    assert conds == [
        {"AttributeName": "contactid", "Operator": "GreaterEqual",
         "Values": [{"Value": "00000000-0000-0000-0000-400000000000", "Type": "System.Guid"}]},
        {"AttributeName": "contactid", "Operator": "LessThan",
         "Values": [{"Value": "00000000-0000-0000-0000-800000000000", "Type": "System.Guid"}]},
    ]
    assert conditions(WHOLE, "contactid") == [] and [c["Operator"] for c in conditions(
        KeyRange(upper=part.upper), "contactid")] == ["LessThan"]
    view: dict[str, Any] = {"EntityName": "contact",
                            "Criteria": {"FilterOperator": "Or", "Conditions": [{"x": 1}], "Filters": []}}
    query = restrict(view, part, "contactid")
    assert query["EntityName"] == "contact" and query["Criteria"]["FilterOperator"] == "And"
    assert query["Criteria"]["Filters"] == [view["Criteria"], {"FilterOperator": "And", "Conditions": conds,
                                                               "Filters": []}]
    assert view["Criteria"]["FilterOperator"] == "Or"                       # the view's query is not changed
    assert restrict(view, WHOLE, "contactid") == view
