"""Step 4's plan: prepare/merges.csv as the user left it, minus what the journal says is done. No HTTP.

Users may delete or edit rows of merges.csv in a spreadsheet before step 4; the file is obeyed as it is,
and a row that cannot be right (ids that are not GUIDs, UpdateContent that is not JSON or names another
table) stops the step with a message naming the row. The pre-flight verdicts step 3 wrote (``preflight``:
``ok`` or ``code: message | code: message``) decide which merges are predicted to fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from errors import RunStateError
from planning.preflight import severity_of, would_fail
from runfolder.folder import RunFolder
from runfolder.journal import SubordinateHistory, read_journal, replay
from runfolder.state import GUID, MERGES_CSV_COLUMNS, Finding, PlannedMerge

_MADE_BY = "step 3 (Prepare duplicates)"
_TYPE_PREFIX = "Microsoft.Dynamics.CRM."

# Pre-flight codes whose failure depends on a choice made now (DESIGN.md section 4).



@dataclass(frozen=True)
class MergeSettings:
    """The choices of one merge run (menu answers or command-line flags)."""

    entity: str
    parenting_checks: bool = True
    max_merges: int | None = None
    skip_predicted_failures: bool = True
    assume_marketing_plugin: bool = False
    marketing_workaround: bool = False
    check_modified: bool = False
    verify_first: int = 20
    verify_sample: float = 0.05
    workers: int | None = None


@dataclass
class MergePlan:
    """What step 4 will do, before it does anything: for the confirmation screen and for run()."""

    entity: str
    total_rows: int
    already_done: int
    to_run: list[PlannedMerge]
    predicted_failures: list[tuple[PlannedMerge, str]]
    unknown_outcomes: list[str]                        # subordinates sent before with no answer recorded
    history: dict[str, SubordinateHistory] = field(default_factory=dict)
    orphans: list[SubordinateHistory] = field(default_factory=list)  # unknown outcome, row since removed
    held_back: int = 0                                 # not run this time because of max_merges
    rows: list[PlannedMerge] = field(default_factory=list)  # every row of merges.csv, in plan order

    @property
    def to_skip(self) -> list[tuple[PlannedMerge, str]]:
        """Predicted failures that are skipped (they are not in to_run)."""
        run_ids = {r.subordinate_id for r in self.to_run}
        return [(r, why) for r, why in self.predicted_failures if r.subordinate_id not in run_ids]

    def summary_lines(self) -> list[str]:
        lines = [f"{self.total_rows} planned merges in merges.csv."]
        if self.already_done:
            lines.append(f"{self.already_done} already done in an earlier run: skipped.")
        if self.unknown_outcomes:
            lines.append(f"{len(self.unknown_outcomes)} were sent before with no answer recorded: "
                         "Dataverse is asked first, none is sent twice.")
        skipped = self.to_skip
        if skipped:
            lines.append(f"{len(skipped)} predicted to fail: skipped.")
            reasons: dict[str, int] = {}
            for _, why in skipped:
                reasons[why] = reasons.get(why, 0) + 1
            lines += [f"  {n} x {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
        elif self.predicted_failures:
            lines.append(f"{len(self.predicted_failures)} predicted to fail: tried anyway.")
        if self.held_back:
            lines.append(f"{self.held_back} left for a later run (maximum {len(self.to_run)} this time).")
        lines.append(f"{len(self.to_run)} merges to run now.")
        return lines


def load_plan(run: RunFolder, settings: MergeSettings) -> MergePlan:
    """Read merges.csv and the journal into the plan of this run (RunStateError on a bad file)."""
    rows = read_merges_csv(run, settings.entity)
    history = replay(read_journal(run.journal_path))
    planned_ids = {r.subordinate_id for r in rows}
    done = [r for r in rows if r.subordinate_id in history and history[r.subordinate_id].done]
    todo = [r for r in rows if not (r.subordinate_id in history and history[r.subordinate_id].done)]
    predicted = [(r, why) for r in todo if (why := predicted_failure(r, settings))]
    skip_ids = {r.subordinate_id for r, _ in predicted} if settings.skip_predicted_failures else set()
    to_run = [r for r in todo if r.subordinate_id not in skip_ids]
    held_back = 0
    if settings.max_merges is not None and len(to_run) > settings.max_merges:
        held_back = len(to_run) - max(0, settings.max_merges)
        to_run = to_run[: max(0, settings.max_merges)]
    unknown = [sub for sub, h in history.items() if h.pending]
    return MergePlan(
        entity=settings.entity, total_rows=len(rows), already_done=len(done), to_run=to_run,
        predicted_failures=predicted, unknown_outcomes=unknown, history=history,
        orphans=[history[s] for s in unknown if s not in planned_ids], held_back=held_back, rows=rows,
    )


def predicted_failure(row: PlannedMerge, settings: MergeSettings) -> str:
    """The reason this merge will fail under these settings, or '' when it should not."""
    plugin = settings.assume_marketing_plugin and not settings.marketing_workaround
    for f in row.preflight:
        if would_fail(f, parenting_checks=settings.parenting_checks, marketing_plugin=plugin):
            return f"predicted to fail: {f.message or f.code}"
    return ""


def parse_preflight(text: str) -> tuple[Finding, ...]:
    """``ok`` / empty -> (); ``code: message | code: message`` -> findings."""
    text = (text or "").strip()
    if not text or text.lower() == "ok":
        return ()
    findings = []
    for part in (p.strip() for p in text.split(" | ") if p.strip()):
        code, _, message = part.partition(":")
        code = code.strip().lower()
        findings.append(Finding(code=code, severity=severity_of(code), message=message.strip() or code))
    return tuple(findings)


def read_merges_csv(run: RunFolder, entity: str) -> list[PlannedMerge]:
    """merges.csv's rows in plan order (group, then order); RunStateError naming the row on a bad one."""
    path = run.merges_csv
    raw = run.read_csv(path, MERGES_CSV_COLUMNS, _MADE_BY)
    rows: list[PlannedMerge] = []
    for number, cells in enumerate(raw, start=2):  # row 1 is the header, as a spreadsheet counts
        try:
            rows.append(_parse_row(cells, entity))
        except ValueError as exc:
            raise RunStateError(f"{run.display(path)} row {number}: {exc}.",
                                f"Fix or delete that row, or rerun {_MADE_BY}.", str(path)) from None
    _check_consistency(rows, run.display(path), str(path))
    group_rank: dict[str, int] = {}
    for r in rows:
        group_rank.setdefault(r.group_id, len(group_rank))
    position = {id(r): i for i, r in enumerate(rows)}
    return sorted(rows, key=lambda r: (group_rank[r.group_id], r.order, position[id(r)]))


def _parse_row(cells: dict[str, str], entity: str) -> PlannedMerge:
    target, sub = _guid(cells, "target_id"), _guid(cells, "subordinate_id")
    order_text = (cells.get("order") or "").strip() or "0"
    try:
        order = int(float(order_text))
    except (ValueError, OverflowError):
        raise ValueError(f"order '{order_text[:20]}' is not a number") from None
    return PlannedMerge(
        group_id=(cells.get("group_id") or "").strip() or target,
        order=order,
        target_id=target,
        subordinate_id=sub,
        update_content=_update_content(cells.get("update_content") or "", entity),
        changed_fields=_changed_fields(cells.get("changed_fields") or ""),
        preflight=parse_preflight(cells.get("preflight") or ""),
        target_modifiedon=(cells.get("target_modifiedon") or "").strip() or None,
        subordinate_modifiedon=(cells.get("subordinate_modifiedon") or "").strip() or None,
    )


def _guid(cells: dict[str, str], column: str) -> str:
    value = (cells.get(column) or "").strip().strip("{}").lower()
    if not GUID.fullmatch(value):
        raise ValueError(f"{column} '{value[:40]}' is not a record id (a GUID)")
    return value


def _update_content(text: str, entity: str) -> dict[str, Any]:
    expected = _TYPE_PREFIX + entity
    if not text.strip():
        return {"@odata.type": expected}
    try:
        content = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"update_content is not valid JSON ({str(exc)[:60]})") from None
    if not isinstance(content, dict):
        raise ValueError("update_content is not a JSON object")
    odata_type = content.setdefault("@odata.type", expected)
    if odata_type != expected:
        raise ValueError(f"update_content is for '{str(odata_type)[len(_TYPE_PREFIX):]}', but this run merges "
                         f"'{entity}' records")
    read_only = [k for k in content if k.startswith("_") and k.endswith("_value")]
    if read_only:  # the read form of a lookup: Dataverse refuses it in a write
        raise ValueError(f"update_content sets {read_only[0]}, the read-only form of a lookup; write "
                         f"'{read_only[0][1:-6]}_<table>@odata.bind': '/<entityset>(<id>)' instead")
    return content


def _changed_fields(text: str) -> tuple[str, ...]:
    text = text.strip()
    if text.startswith("["):
        try:
            return tuple(str(f) for f in json.loads(text))
        except ValueError:
            pass
    return tuple(f for f in re.split(r"[;,|\s]+", text) if f)


def _check_consistency(rows: list[PlannedMerge], shown: str, path: str) -> None:
    """A subordinate merged twice, or a record that is both a target and a subordinate, cannot be planned."""
    first_row: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):
        if row.subordinate_id in first_row:
            raise RunStateError(
                f"{shown} rows {first_row[row.subordinate_id]} and {number} both merge record {row.subordinate_id}.",
                f"A record can be merged away only once: delete one of the rows, or rerun {_MADE_BY}.", path)
        first_row[row.subordinate_id] = number
    for number, row in enumerate(rows, start=2):
        if row.target_id in first_row and row.target_id != row.subordinate_id:
            raise RunStateError(
                f"{shown} row {number} merges into {row.target_id}, which row {first_row[row.target_id]} merges "
                "away.", f"Make both rows use the same target, or rerun {_MADE_BY}.", path)
