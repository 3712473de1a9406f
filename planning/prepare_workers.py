"""Step 3's planning loop: every group through the Planner, its audit files written, its merges returned.

Large runs on Linux plan in worker processes, one per core: each is forked with the records, the
pre-flight data and the planner already in memory (nothing is copied or pickled on the way in), plans a
range of groups, writes those groups' audit files itself, and sends back only the planned merges. On
other systems, in a process that runs other threads (forking those is unsafe), or for small runs the
groups are planned here, with a helper process writing the audit files (`audit.AuditWriter`).
The merges come back in group order either way, and the first error the merge logic raises is raised.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from planning.audit_files import AuditWriter, fork_is_safe, write_audit_batch
from planning.planner import Planner
from planning.targets import Strategy
from runfolder.state import Group, PlannedMerge

Records = Mapping[str, Mapping[str, Any]]
_Job = tuple[Planner, Sequence[Group], Records, Strategy, str, list[str]]
log = logging.getLogger(__name__)
_job: _Job | None = None  # in a worker process: what it was forked with (set by _start)


def plan_groups(planner: Planner, groups: Sequence[Group], records: Records, strategy: Strategy,
                audit_dir: Path, first: list[str], *, workers: int | None = None,
                parallel_from: int = 5000) -> list[PlannedMerge]:
    """Plan every group and write its audit files into `audit_dir`; the planned merges in group order.
    `planner.dropped` counts what the merge logic returned that cannot be written, workers included."""
    count = workers or os.cpu_count() or 1
    subordinates = sum(len(g.record_ids) - 1 for g in groups)
    if count < 2 or subordinates < parallel_from or not fork_is_safe():
        log.info("Planning %d merges in this process (%d threads running)", subordinates, threading.active_count())
        return _plan_here(planner, groups, records, strategy, audit_dir, first)
    log.info("Planning %d merges in %d worker processes", subordinates, count)
    audit_dir.mkdir(parents=True, exist_ok=True)
    size = max(1, len(groups) // (count * 8))  # small ranges: the workers finish together
    ranges = [(start, min(start + size, len(groups))) for start in range(0, len(groups), size)]
    job: _Job = (planner, groups, records, strategy, str(audit_dir), first)
    merges: list[PlannedMerge] = []
    pool = ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start, initargs=(job,))
    failed = True
    gc.freeze()  # the workers' garbage collector leaves the inherited objects alone: no copy-on-write of them
    try:
        for planned, dropped in pool.map(_plan_range, ranges):
            merges += planned
            planner.dropped.update(dropped)
        failed = False
    finally:  # on an error, the ranges not started yet are dropped
        pool.shutdown(wait=True, cancel_futures=failed)
        gc.unfreeze()
    return merges


def _start(job: _Job) -> None:
    global _job  # noqa: PLW0603 - per worker process, set once when it starts
    _job = job


def _plan_range(span: tuple[int, int]) -> tuple[list[PlannedMerge], Counter[str]]:
    assert _job is not None, "worker started without its job"
    planner, groups, records, strategy, folder, first = _job
    planner.dropped.clear()  # this range's count only; the parent adds them up
    merges: list[PlannedMerge] = []
    audits = []
    for group in groups[span[0]:span[1]]:
        planned, rows = planner.plan(group.group_id, [records[i] for i in group.record_ids], strategy)
        merges += planned
        audits += rows
    write_audit_batch(folder, first, audits)  # refuses an id that is not a file name
    return merges, Counter(planner.dropped)


def _plan_here(planner: Planner, groups: Sequence[Group], records: Records, strategy: Strategy,
               audit_dir: Path, first: list[str]) -> list[PlannedMerge]:
    merges: list[PlannedMerge] = []
    with AuditWriter(audit_dir, first) as audit:
        for group in groups:
            planned, audits = planner.plan(group.group_id, [records[i] for i in group.record_ids], strategy)
            for rows in audits:
                audit.add(rows)
            merges += planned
    return merges
