"""prepare_workers: forked workers plan exactly what one process plans, write the same audit files,
count what cannot be written, and raise the merge logic's error."""

from __future__ import annotations

import multiprocessing
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from test_prepare_duplicates import CONTACT, contact, entity_set, with_parent

import prepare_duplicates as prep
from planning import prepare_workers
from planning.planner import MergeLogicError, Planner
from planning.preflight import PreflightData
from planning.targets import get_strategy
from runfolder.state import Group

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux")
                                or "fork" not in multiprocessing.get_all_start_methods(),
                                reason="worker processes are forked on Linux only")


def groups_and_records(count: int) -> tuple[list[Group], dict[str, dict[str, Any]]]:
    rng = random.Random(7)
    groups, records = [], {}
    for g in range(count):
        ids = [f"00000000-0000-0000-{g:04d}-{n:012d}" for n in range(rng.choice([2, 2, 3, 4]))]
        for n, rid in enumerate(ids):
            record = contact(rid, f"202{n}-01-01T00:00:00Z", emailaddress1=f"{rid[-3:]}{rng.randrange(3)}@x.com",
                             jobtitle=rng.choice([None, "CEO", "CTO"]), description="=1+1")
            records[rid] = with_parent(record, "00000000-0000-0000-0000-0000000000e1") if n == 0 else record
        groups.append(Group(ids[0], tuple(ids)))
    return groups, records


def logic(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
    """The default rule, plus a column Dataverse does not let a merge write (counted as not written)."""
    return {**prep._create_merge_result(target_row, subordinate_row, columns), "createdon": "2020-01-01"}


def planner() -> Planner:
    return Planner(CONTACT, logic, prep.fields_to_ignore, entity_set, PreflightData())


def test_workers_plan_and_write_what_one_process_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepare_workers, "fork_is_safe", lambda: True)  # pytest may run other threads
    groups, records = groups_and_records(300)
    strategy, first = get_strategy("oldest_record"), ["contactid", "fullname"]
    here, forked = planner(), planner()
    expected = prepare_workers.plan_groups(here, groups, records, strategy, tmp_path / "here", first, workers=1)
    got = prepare_workers.plan_groups(forked, groups, records, strategy, tmp_path / "forked", first, workers=2,
                                      parallel_from=1)
    assert got == expected and len(got) == sum(len(g.record_ids) - 1 for g in groups)
    assert forked.dropped == here.dropped and here.dropped["createdon"] == len(got)
    names = sorted(p.name for p in (tmp_path / "here").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "forked").iterdir()) and len(names) == len(got)
    for name in names[::37]:
        assert (tmp_path / "forked" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()


def test_an_error_in_a_worker_is_raised_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepare_workers, "fork_is_safe", lambda: True)
    groups, records = groups_and_records(200)
    bad = groups[150].record_ids[1]

    def broken(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        if subordinate_row["contactid"] == bad:
            raise ValueError("no good")
        return {}

    failing = Planner(CONTACT, broken, prep.fields_to_ignore, entity_set, PreflightData())
    with pytest.raises(MergeLogicError, match=f"subordinate {bad}: ValueError: no good") as info:
        prepare_workers.plan_groups(failing, groups, records, get_strategy("oldest_record"), tmp_path,
                                    ["contactid"], workers=2, parallel_from=1)
    assert "run step 3 again" in info.value.hint
