"""Step 3's machinery (the shell around the pure planner): read the run folder and what Dataverse must tell
before planning, plan every group with the merge logic of prepare_duplicates.py, write prepare/.

Every read from Dataverse happens before planning starts (table metadata, entity set names, pre-flight
data); the planning loop itself does no I/O and forks nothing. Audit files are written as merges are
planned, by a spawned helper process for large runs (`planning.audit_files.AuditWriter`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataverse import DataverseClient
from errors import NotFoundError, RunStateError, about
from planning.audit_files import AuditWriter, merges_row
from planning.planner import MergeFn, Planner, plan_all
from planning.preflight import Fetch, gather_by_ids, summarise, with_parents
from planning.targets import get_strategy
from runfolder.folder import RunFolder
from runfolder.state import MERGES_CSV_COLUMNS, DuplicateGroups

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareSettings:
    entity: str
    target_strategy: str = "oldest_record"


@dataclass(frozen=True)
class PrepareResult:
    entity: str
    groups: int
    merges: int
    flagged: int                                    # merges with at least one pre-flight finding
    audit_files: int
    merges_csv: Path
    audit_dir: Path
    top_changed_fields: tuple[tuple[str, int], ...]  # (field, merges that change it), most first
    preflight_counts: dict[str, int]                # finding code -> merges
    not_written: tuple[tuple[str, int], ...] = ()   # columns the merge logic returned that cannot be written


def run(client: DataverseClient, run: RunFolder, settings: PrepareSettings, *, merge_fn: MergeFn,
        ignore: Iterable[str]) -> PrepareResult:
    """Plan every group of the run folder and write prepare/ (audit records + merges.csv). Reads Dataverse only."""
    strategy = get_strategy(settings.target_strategy)
    groups = _read_groups(run, settings.entity)
    meta = client.entity(settings.entity)
    fetch = _fetcher(client)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preflight") as side:  # network while reading files
        by_ids = side.submit(gather_by_ids, meta.logical_name, [i for g in groups.groups for i in g.record_ids],
                             fetch)
        records = _read_records(run, groups, meta.primary_id)
        checks = with_parents(by_ids.result(), meta.logical_name, meta.entity_set_name, meta.primary_id, records,
                              fetch)
    planner = Planner(meta, merge_fn, ignore, client.entity_set_names(), checks)
    first = [meta.primary_id, meta.primary_name]
    with run.replace_dir(run.prepare_dir) as tmp:
        with AuditWriter(tmp / run.audit_dir.relative_to(run.prepare_dir), first) as audit:
            merges = plan_all(planner, groups.groups, records, strategy, audit)
        run.write_csv(tmp / run.merges_csv.relative_to(run.prepare_dir), MERGES_CSV_COLUMNS,
                      [merges_row(m) for m in merges])
    changed = Counter(f for m in merges for f in m.changed_fields)
    return PrepareResult(
        entity=meta.logical_name, groups=len(groups.groups), merges=len(merges),
        flagged=sum(1 for m in merges if m.preflight), audit_files=len(merges), merges_csv=run.merges_csv,
        audit_dir=run.audit_dir, top_changed_fields=tuple(changed.most_common(10)),
        preflight_counts=summarise(m.preflight for m in merges),
        not_written=tuple(sorted(planner.dropped.items())),
    )


def summary_lines(result: PrepareResult) -> list[str]:
    """The step's report, a line each."""
    lines = [f"{result.merges} merges planned in {result.groups} groups of {result.entity} records."]
    if result.top_changed_fields:
        lines.append("Fields changed most often: " + ", ".join(f"{f} ({n})" for f, n in result.top_changed_fields))
    if result.preflight_counts:
        lines.append(f"Pre-flight: {result.flagged} merges have findings: "
                     + ", ".join(f"{code} {n}" for code, n in result.preflight_counts.items()))
    else:
        lines.append("Pre-flight: nothing predicts a refusal.")
    if result.not_written:
        lines.append("Not written (in fields_to_ignore, not valid for update, or not a column; lookups are "
                     "_x_value): " + ", ".join(f"{c} ({n})" for c, n in result.not_written))
    lines.append(f"Written: {result.merges_csv} and {result.audit_files} audit files in {result.audit_dir}.")
    return lines


def _read_groups(run: RunFolder, entity: str) -> DuplicateGroups:
    groups = run.read_duplicate_groups()
    if groups.entity != entity:
        path = run.duplicate_groups_path
        raise about("entity", RunStateError(
            f"{run.display(path)} holds {groups.entity} groups, but step 3 was asked to prepare {entity} records.",
            f"Use the entity '{groups.entity}', or another run folder.", str(path)))
    return groups


def _read_records(run: RunFolder, groups: DuplicateGroups, key: str) -> dict[str, dict[str, Any]]:
    """Every record of every group, only its columns with a value: a real record is mostly empty columns,
    and 100,000s of them are held at once. (One thread: the files come from the page cache, and parsing
    them is Python work that threads would only fight over.)"""
    records: dict[str, dict[str, Any]] = {}
    for group in groups.groups:
        for record_id in group.record_ids:
            try:
                records[record_id] = {k: v for k, v in run.read_record(record_id, key).items() if v is not None}
            except RunStateError as exc:
                path = run.record_path(record_id)
                if path.exists():
                    raise
                raise RunStateError(f"The record file {run.display(path)} (group {group.group_id}) is missing.",
                                    "Rerun step 2 (Group duplicates) to download the records again.",
                                    str(path)) from exc
    return records


def _fetcher(client: DataverseClient) -> Fetch:
    """Bulk reads for the pre-flight data; a table the org does not have (no Sales: no quotes) reads as empty."""

    def fetch(entity_set: str, key: str, ids: list[str], select: list[str]) -> list[dict]:
        try:
            return list(client.get_many(entity_set, key, ids, select, annotations=True))
        except NotFoundError as exc:
            log.warning("No %s table here (%s): its pre-flight check is skipped.", entity_set, exc.message)
            return []

    return fetch

