"""Step 3: decide every merge and write the preview. Nothing is written to Dataverse.

Reads group/duplicate_groups.json and group/record_data/{id}.json (step 2). For each group it picks
the target (the record that stays), then runs the merge logic below once per subordinate to decide
which columns to write on the target (the Merge's UpdateContent). Writes:
- prepare/audit_records/{subordinate id}.csv: subordinate, target, merge_function, target_after_merge;
- prepare/merges.csv: one row per planned merge, with the pre-flight verdict (will Dataverse refuse it?).
Rerun it as often as you like: each run replaces the prepare folder.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataverse import DataverseClient, EntityMetadata
from errors import DataverseError, RunStateError, about
from planning.audit_files import AuditRows, merges_row
from planning.planner import MergeFn, Planner, SetResolver, is_lookup_column, logical_name, writable_columns  # noqa: F401
from planning.preflight import Fetch, PreflightData, gather, summarise
from planning.prepare_workers import plan_groups
from planning.targets import Strategy, get_strategy, parse_when, register_strategy  # noqa: F401  (for your own)
from runfolder.folder import RunFolder
from runfolder.state import MERGES_CSV_COLUMNS, DuplicateGroups, PlannedMerge

# The helpers a merge rule is written with (merge_helpers.py explains each one)
from planning.helpers import (  # noqa: F401  # isort: skip
    EMAIL_SLOTS, PHONE_SLOTS, current, demote_to_slot, fill_address, fill_empty, has_address, is_address,
    is_boolean, is_empty, move_address_to, newer_wins, same_phone, same_postcode, same_text, take_subordinate,
    true_wins,
)

# ---- Merge logic: edit this part ---------------------------------------------------------------------------
# Columns never written to the target: it keeps its own value. Logical names (ownerid, not _ownerid_value).
# Columns Dataverse does not let us update (createdon, modifiedon, ...) are left out automatically.
fields_to_ignore = [
    "statecode", "statuscode", "ownerid", "owningbusinessunit", "owninguser", "owningteam",
    "createdon", "createdby", "createdonbehalfby", "modifiedon", "modifiedby", "modifiedonbehalfby",
    "overriddencreatedon", "versionnumber", "importsequencenumber", "merged", "masterid",
    "fullname", "yomifullname", "address1_composite", "address2_composite", "address3_composite",
    "address1_addressid", "address2_addressid", "address3_addressid", "processid", "stageid", "traversedpath",
    "transactioncurrencyid", "exchangerate", "timezoneruleversionnumber", "utcconversiontimezonecode",
]


def _create_merge_result(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
    """Return the columns to write on the target for this one merge: {column: new value}.

    target_row is the target as it will be when this merge runs (earlier merges of the group applied);
    subordinate_row is the record being merged into it. Both are dicts: column -> value; an empty column
    reads as None (row[col] and row.get(col) alike). columns: the columns this merge may write (with a
    value on either record, updatable, not ignored), A-Z.
    Lookups appear as `_parentcustomerid_value` (the id); return `{"_parentcustomerid_value": id}` to set
    one. Return only what should change: unchanged values, fields_to_ignore and columns Dataverse cannot
    update are dropped anyway. None clears a column (a lookup cannot be cleared by a merge); a pandas NaN
    writes nothing. Check the result in prepare/audit_records/ and rerun step 3.

    Default rules:
    - target empty, subordinate set: take the subordinate's value;
    - emails: the subordinate's email goes to the first free slot (emailaddress2, then emailaddress3),
      unless the target already has it in any slot (ignoring case);
    - phones: the same with telephone1/2/3 (compared by digits);
    - Yes/No flags (donotemail, new_isvip, ... any column whose value is true/false): Yes wins;
    - addresses: same postcode -> fill the missing parts; different postcode -> the subordinate's
      address1 goes to address2 (when the target's address2 is empty);
    - anything else that differs: take the subordinate's value.
    """
    result: dict = {}
    for col in columns:
        subordinate_val = subordinate_row.get(col)
        if is_empty(subordinate_val) or subordinate_val == target_row.get(col) or is_address(col):
            continue  # nothing to bring over; addresses are handled as whole blocks below

        # Example 1 (the article's "third email slot", written out by hand): emailaddress2, else emailaddress3.
        # --- example: third email slot
        # if col == "emailaddress1" and not same_text(subordinate_val, target_row.get("emailaddress1")):
        #     if target_row.get("emailaddress2") is None:
        #         result["emailaddress2"] = subordinate_val
        #     elif target_row.get("emailaddress3") is None:
        #         result["emailaddress3"] = subordinate_val
        #     continue
        # --- end

        # Example 2: take the preferred contact method of whichever record was contacted last.
        # --- example: newer wins by a date field
        # if col == "preferredcontactmethodcode":
        #     newer_wins(result, target_row, subordinate_row, col, date_col="new_lastcontacteddate")
        #     continue
        # --- end

        if col in EMAIL_SLOTS:
            demote_to_slot(result, target_row, subordinate_val, slots=EMAIL_SLOTS)
        elif col in PHONE_SLOTS:
            demote_to_slot(result, target_row, subordinate_val, slots=PHONE_SLOTS, primary="telephone1",
                           same=same_phone)
        elif is_boolean(subordinate_val):
            true_wins(result, target_row, col, subordinate_val)
        else:
            take_subordinate(result, target_row, col, subordinate_val)  # fills an empty target too

    # Example 3: only bring an address over when the subordinate's is complete enough.
    # --- example: address completeness
    # parts = [c for c in ("address1_line1", "address1_city", "address1_postalcode") if subordinate_row.get(c)]
    # if len(parts) < 3:
    #     return result  # too sketchy: keep the target's address as it is
    # --- end

    if has_address(subordinate_row, "address1"):
        if not has_address(target_row, "address1") or same_postcode(target_row, subordinate_row):
            fill_address(result, target_row, subordinate_row, "address1")
        else:
            move_address_to(result, target_row, subordinate_row, "address2")
    for block in ("address2", "address3"):
        if has_address(subordinate_row, block) and (
                not has_address(target_row, block, result) or same_postcode(target_row, subordinate_row, block)):
            fill_address(result, target_row, subordinate_row, block)
    return result


# Target choice: step 3 asks which strategy picks the record that stays: oldest_record, newest_record,
# most_complete or most_recently_modified (targets.py). Add your own and choose it by its name:
# --- example: own target strategy
# @register_strategy("most_emails")
# def most_emails(records: list[dict]) -> dict:
#     return max(records, key=lambda r: sum(1 for c in EMAIL_SLOTS if r.get(c)))
# --- end

# ---- Machinery below: not for editing ---------------------------------------------------------------------

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


def plan_group(
    group_id: str,
    records: Sequence[Mapping[str, Any]],
    meta: EntityMetadata,
    strategy: str | Strategy = "oldest_record",
    merge_fn: MergeFn = _create_merge_result,
    ignore: Iterable[str] = fields_to_ignore,
    *,
    resolve_set: SetResolver | None = None,
    preflight: PreflightData | None = None,
) -> tuple[list[PlannedMerge], list[AuditRows]]:
    """Plan one group's merges (pure): the target by `strategy`, then one PlannedMerge and AuditRows per
    subordinate, oldest first, each seeing the target as the earlier merges leave it.

    `resolve_set(table)` gives a table's entity set name (`account` -> `accounts`) for lookups; without it
    every lookup change is dropped with a warning. With `preflight` data the checks run too.
    """
    chosen = get_strategy(strategy) if isinstance(strategy, str) else strategy
    return Planner(meta, merge_fn, ignore, resolve_set, preflight).plan(group_id, records, chosen)


# -- the step: files and Dataverse (reads only) -----------------------------------------------------------------
def run(client: DataverseClient, run: RunFolder, settings: PrepareSettings) -> PrepareResult:
    """Plan every group of the run folder and write prepare/ (audit records + merges.csv). Reads Dataverse only."""
    strategy = get_strategy(settings.target_strategy)
    groups = _read_groups(run, settings.entity)
    meta = client.entity(settings.entity)
    records = _read_records(run, groups)
    checks = gather(meta.logical_name, meta.entity_set_name, meta.primary_id, records, _fetcher(client))
    planner = Planner(meta, _create_merge_result, fields_to_ignore, _set_resolver(client), checks)
    first = [meta.primary_id, meta.primary_name]
    with run.replace_dir(run.prepare_dir) as tmp:
        merges = plan_groups(planner, groups.groups, records, strategy,
                             tmp / run.audit_dir.relative_to(run.prepare_dir), first)
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


def _read_records(run: RunFolder, groups: DuplicateGroups) -> dict[str, dict[str, Any]]:
    """Every record of every group, only its columns with a value: a real record is mostly empty columns,
    and 100,000s of them are held at once."""
    records: dict[str, dict[str, Any]] = {}
    for group in groups.groups:
        for record_id in group.record_ids:
            try:
                records[record_id] = {k: v for k, v in run.read_record(record_id).items() if v is not None}
            except RunStateError as exc:
                path = run.record_path(record_id)
                if path.exists():
                    raise
                raise RunStateError(f"The record file {run.display(path)} (group {group.group_id}) is missing.",
                                    "Rerun step 2 (Group duplicates) to download the records again.",
                                    str(path)) from exc
    return records


def _set_resolver(client: DataverseClient) -> SetResolver:
    """table -> entity set name through the client's metadata; None for a table Dataverse does not know."""
    cache: dict[str, str | None] = {}

    def resolve(table: str) -> str | None:
        if table not in cache:
            try:
                cache[table] = client.entity(table).entity_set_name
            except DataverseError as exc:
                if exc.status != 404:
                    raise
                cache[table] = None
        return cache[table]

    return resolve


def _fetcher(client: DataverseClient) -> Fetch:
    """Bulk reads for the pre-flight data; a table the org does not have (no Sales: no quotes) reads as empty."""

    def fetch(entity_set: str, key: str, ids: list[str], select: list[str]) -> list[dict]:
        try:
            return list(client.get_many(entity_set, key, ids, select, annotations=True))
        except DataverseError as exc:
            if exc.status != 404:
                raise
            log.warning("No %s table here (%s): its pre-flight check is skipped.", entity_set, exc.message)
            return []

    return fetch
