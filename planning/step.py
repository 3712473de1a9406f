"""Step 3's machinery (the shell around the pure planner): read the run folder and what Dataverse must tell
before planning, plan every group with the merge logic of prepare_duplicates.py, write prepare/: the plan
(plan.jsonl, what step 4 runs), its view for people (merges.csv) and one audit file per merge.

Every read from Dataverse happens before planning starts (table metadata, entity set names, pre-flight
data); the planning loop itself does no I/O and forks nothing. Audit files and review.html are built from
each merge's audit rows as it is planned, by a helper process started fresh (`report.output_process`, never a
fork: it shares no connection and never talks to Dataverse), on the machine's other core. Step 3 holds the
run folder's lock, and once step 4 has begun on a plan it replaces that plan only when asked (`replan`):
then it plans what is left, from the records as they stand now, and never re-targets a merge that happened.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dataverse import DataverseClient, EntityMetadata, Environment
from dataverse.related import counts, list_memberships, merge_relationships, related_rows
from errors import EnvironmentMismatchError, NotFoundError, RunStateError, StepFourStartedError, UsageError, about
from planning.planner import MergeFn, Planner, plan_all
from planning.preflight import Fetch, PreflightData, gather_by_ids, summarise, with_parents
from planning.targets import get_strategy
from report.output_process import OutputProcess
from runfolder.folder import RunFolder
from runfolder.journal import SubordinateHistory, read_journal, replay
from runfolder.lock import RunLock
from runfolder.merges_csv import read_selection, write_view
from runfolder.plan_file import PlanHeader, read_plan, write_plan
from runfolder.state import DuplicateGroups, Group, PlannedMerge

log = logging.getLogger(__name__)
_MADE_BY = "step 2 (Group duplicates)"


@dataclass(frozen=True)
class PrepareSettings:
    entity: str
    target_strategy: str = "oldest_record"
    replan: bool = False          # step 4 has begun: plan only what is left (from fresh records)
    allow_large_groups: bool = False   # plan groups over duplicate_groups.json's max_group_size too


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
    environment: Environment | None = None
    already_merged: int = 0                         # with replan: subordinates merged by earlier runs of step 4
    kept_targets: int = 0                           # with replan: groups whose target was fixed by a merge done
    notes: list[str] = field(default_factory=list)  # lines for the summary (groups left out, ...)
    related_totals: tuple[tuple[str, int], ...] = ()  # related rows the merges will move, per table, most first
    review_page: Path | None = None                 # prepare/review.html: the plan as a page to review


def run(client: DataverseClient, run: RunFolder, settings: PrepareSettings, *, merge_fn: MergeFn,
        ignore: Iterable[str]) -> PrepareResult:
    """Plan every group of the run folder and write prepare/. Reads Dataverse only."""
    strategy = get_strategy(settings.target_strategy)
    with RunLock(run.lock_path, "step 3 (Prepare duplicates)"):
        groups = _read_groups(run, settings.entity)
        environment = _check_environment(run, groups, client)
        history = replay(read_journal(run.journal_path))
        previous = _check_not_started(run, history, settings)
        notes: list[str] = []
        excluded = _carried_exclusions(run, notes)
        groups = _without_large(_without(groups, excluded), settings.allow_large_groups, notes)
        meta = client.entity(settings.entity)
        fetch = _fetcher(client)
        targets: dict[str, str] = {}
        first = [meta.primary_id, meta.primary_name]
        with run.replace_dir(run.prepare_dir) as tmp, \
                OutputProcess(tmp / run.audit_dir.relative_to(run.prepare_dir), first) as output:
            # the helper process starts while the records are read; it writes the audit files and the page
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preflight") as side:  # network while reading
                if settings.replan:
                    records = _fresh_records(client, meta, groups)
                    groups, targets = _what_is_left(groups, records, history, environment, notes)
                impact = side.submit(_impact, client, meta, [i for g in groups.groups for i in g.record_ids], fetch)
                if not settings.replan:
                    records = _read_records(run, groups, meta.primary_id)
                related, by_ids, skipped = impact.result()
                checks = with_parents(by_ids, meta.logical_name, meta.entity_set_name, meta.primary_id, records,
                                      fetch)
            notes += skipped
            planner = Planner(meta, merge_fn, ignore, client.entity_set_names(), checks, related)
            header = PlanHeader.new(meta.logical_name, environment, settings.target_strategy, previous, excluded)
            merges = plan_all(planner, groups.groups, records, strategy, output, targets)
            output.finish(tmp / run.review_page.name, header, merges,
                          related={m.subordinate_id: dict(m.related) for m in merges if m.related})
            # while the helper renders the page and creates the last audit files: the plan and its view
            write_plan(tmp / run.plan_path.name, header, merges)
            write_view(tmp / run.merges_csv.name, merges)
            output.close()
    changed = Counter(f for m in merges for f in m.changed_fields)
    return PrepareResult(
        entity=meta.logical_name, groups=len(groups.groups), merges=len(merges),
        flagged=sum(1 for m in merges if m.preflight), audit_files=len(merges), merges_csv=run.merges_csv,
        audit_dir=run.audit_dir, top_changed_fields=tuple(changed.most_common(10)),
        preflight_counts=summarise(m.preflight for m in merges),
        not_written=tuple(sorted(planner.dropped.items())), environment=environment,
        already_merged=sum(1 for h in history.values() if h.done), kept_targets=len(targets), notes=notes,
        related_totals=_totals(merges),
        review_page=run.review_page,
    )


def summary_lines(result: PrepareResult) -> list[str]:
    """The step's report, a line each."""
    lines = [f"{result.merges} merges planned in {result.groups} groups of {result.entity} records"
             + (f" in {result.environment.describe()}." if result.environment else ".")]
    if result.already_merged:
        lines.append(f"Planned what is left: {result.already_merged} subordinates were merged by step 4 already; "
                     f"{result.kept_targets} groups keep the target they were merged into.")
    lines += result.notes
    if result.related_totals:
        lines.append("Related rows that will move: " + ", ".join(f"{n:,} {t}" for t, n in result.related_totals))
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
    if result.review_page:
        lines.append(f"Review the plan in a browser: {result.review_page}")
    return lines


def _impact(client: DataverseClient, meta: EntityMetadata, ids: list[str],
            fetch: Fetch) -> tuple[dict[str, dict[str, int]], PreflightData, list[str]]:
    """What each record's merge would move (rows pointing at it, per table; its list memberships), the
    pre-flight data that needs only ids, and lines naming tables that could not be read."""
    relationships = merge_relationships(client, meta.logical_name)
    rows = related_rows(client, relationships, ids)
    lists = list_memberships(client, ids) if relationships.memberships else {}
    related = {i: c for i in ids if (c := counts(relationships, rows.get(i, {}), lists.get(i, [])))}
    by_ids = gather_by_ids(meta.logical_name, ids, fetch, {i: len(set(v)) for i, v in lists.items()})
    return related, by_ids, [f"Not counted: {s}." for s in relationships.skipped]


def _totals(merges: list[PlannedMerge]) -> tuple[tuple[str, int], ...]:
    totals: Counter[str] = Counter()
    for m in merges:
        totals.update(dict(m.related))
    return tuple(totals.most_common())


def _read_groups(run: RunFolder, entity: str) -> DuplicateGroups:
    groups = run.read_duplicate_groups()
    if groups.entity != entity:
        path = run.duplicate_groups_path
        raise about("entity", RunStateError(
            f"{run.display(path)} holds {groups.entity} groups, but step 3 was asked to prepare {entity} records.",
            f"Use the entity '{groups.entity}', or another run folder.", str(path)))
    return groups


def _check_environment(run: RunFolder, groups: DuplicateGroups, client: DataverseClient) -> Environment:
    """The records were read from one environment: plan against that one only."""
    here = client.environment()
    if groups.environment is not None and not groups.environment.same_as(here):
        raise EnvironmentMismatchError(
            f"The run folder {run.root.name} holds records of {groups.environment.describe()}, but you are signed "
            f"in to {here.describe()}.",
            "Use the .env file of that environment (--env-file), or run step 2 again in a new folder.")
    return here


def _carried_exclusions(run: RunFolder, notes: list[str]) -> frozenset[str]:
    """Records whose rows were deleted from merges.csv stay out of their groups when step 3 plans again (and so
    do the ones earlier plans kept out): "rerun step 3 to plan the rest without it"."""
    if not run.plan_path.exists():
        return frozenset()
    try:
        old = read_plan(run.plan_path)
    except RunStateError:
        notes.append("The previous plan could not be read: rows deleted from its merges.csv are not carried over.")
        return frozenset()
    excluded = set(old.header.excluded)
    try:
        excluded |= {m.subordinate_id for m in read_selection(run.merges_csv, old, run.root.parent).left_out}
    except (RunStateError, UsageError):
        notes.append("merges.csv did not match its plan: rows deleted from it are not carried over this time.")
    if excluded:
        notes.append(f"{len(excluded)} records whose rows were deleted from merges.csv stay out of their groups "
                     "(delete the prepare folder to plan them again).")
    return frozenset(excluded)


def _without_large(groups: DuplicateGroups, allowed: bool, notes: list[str]) -> DuplicateGroups:
    """Groups over the size threshold are left out unless the user allows them (the runaway-group guard)."""
    large = groups.too_large()
    if not large or allowed:
        return groups
    sizes = ", ".join(str(len(g.record_ids)) for g in sorted(large, key=lambda g: -len(g.record_ids))[:10])
    notes.append(f"{len(large)} groups with more than {groups.max_group_size} records were left out (sizes {sizes}); "
                 "check them in duplicate_groups.json and rerun step 3 with --allow-large-groups to plan them.")
    keep = {g.group_id for g in large}
    return replace(groups, groups=[g for g in groups.groups if g.group_id not in keep])


def _without(groups: DuplicateGroups, excluded: frozenset[str]) -> DuplicateGroups:
    """The groups without the excluded records; a group left with one record is no group."""
    if not excluded:
        return groups
    kept = [Group(g.group_id, ids) for g in groups.groups
            if len(ids := tuple(i for i in g.record_ids if i not in excluded)) > 1]
    return replace(groups, groups=kept)


def _check_not_started(run: RunFolder, history: dict[str, SubordinateHistory], settings: PrepareSettings) -> str:
    """Refuse to replace a plan whose merges have begun, unless `replan`; the plan id being replaced."""
    sent = [h for h in history.values() if h.sends or h.list_steps]
    previous = ""
    if run.plan_path.exists():
        try:
            previous = read_plan(run.plan_path).header.plan_id
        except RunStateError:
            previous = ""
    if not sent:
        return previous
    done = sum(1 for h in history.values() if h.done)
    if not settings.replan:
        raise StepFourStartedError(
            f"Step 4 has begun on this folder's plan ({done} merges done, {len(sent)} records sent): a new plan "
            "would count merges into other targets as done and plan on top of records already merged away.",
            "Rerun step 3 with --replan to plan only what is left from the records as they stand now (the menu "
            "asks), or use a new run folder.", str(run.journal_path))
    pending = [h.subordinate_id for h in history.values() if h.pending]
    if pending:
        raise RunStateError(
            f"{len(pending)} merges of the last run of step 4 got no answer (e.g. {pending[0]}).",
            "Run step 4 again first (it asks Dataverse what became of them), then step 3 with --replan.",
            str(run.journal_path))
    return previous


def _fresh_records(client: DataverseClient, meta: EntityMetadata, groups: DuplicateGroups) -> dict[str, dict[str, Any]]:
    """Every record of the groups as it stands now in Dataverse (only its columns with a value)."""
    ids = [i for g in groups.groups for i in g.record_ids]
    rows = client.get_many(meta.entity_set_name, meta.primary_id, ids, meta.readable(), annotations=True)
    return {str(r[meta.primary_id]).lower(): {k: v for k, v in r.items() if v is not None} for r in rows}


def _what_is_left(groups: DuplicateGroups, records: dict[str, dict[str, Any]],
                  history: dict[str, SubordinateHistory], environment: Environment,
                  notes: list[str]) -> tuple[DuplicateGroups, dict[str, str]]:
    """The groups without their merged-away records, and the targets that merges already fixed."""
    merged = {h.subordinate_id: h.target_id for h in history.values() if h.done}
    left: list[Group] = []
    targets: dict[str, str] = {}
    for group in groups.groups:
        into = {merged[i] for i in group.record_ids if i in merged}
        alive = tuple(i for i in group.record_ids if i not in merged and i in records
                      and not records[i].get("_masterid_value"))
        if len(into) > 1:
            notes.append(f"Group {group.group_id} was merged into {len(into)} different targets: left out.")
            continue
        if into and next(iter(into)) not in alive:
            notes.append(f"Group {group.group_id}: its target {next(iter(into))} is gone or merged away: left out.")
            continue
        if len(alive) > 1:
            left.append(Group(group.group_id, alive))
            if into:
                targets[group.group_id] = next(iter(into))
    log.info("replan in %s: %d of %d groups left", environment.uri, len(left), len(groups.groups))
    return DuplicateGroups(groups.job_id, groups.entity, left, groups.pairs_read, groups.capped, groups.created,
                           groups.environment), targets


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
                                    f"Rerun {_MADE_BY} to download the records again.", str(path)) from exc
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
