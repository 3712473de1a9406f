"""What a run folder holds so far: groups, the plan, merges done (from the journal). Reads files only."""

from __future__ import annotations

from collections import Counter

from errors import RunStateError
from runfolder.folder import RunFolder
from runfolder.journal import read_journal, replay
from runfolder.plan_file import read_plan


def describe(run: RunFolder) -> list[str]:
    lines = [f"Run folder: {run.root}"]
    if not run.root.exists():
        return lines + ["  (empty: start with step 2, Group duplicates)"]
    try:
        groups = run.read_duplicate_groups()
        size = sum(len(g.record_ids) for g in groups.groups)
        where = f" in {groups.environment.describe()}" if groups.environment else ""
        jobs = groups.all_job_ids
        source = f"job {jobs[0]}" if len(jobs) == 1 else f"{len(jobs)} detection jobs"
        lines.append(f"  step 2: {len(groups.groups)} groups, {size} records of {groups.entity}{where} from {source}")
    except RunStateError as exc:
        lines.append(f"  step 2: {exc.message}")
    if run.plan_path.exists():
        try:
            header = read_plan(run.plan_path).header
            lines.append(f"  step 3: {header.merges} merges planned on {header.prepared_at} for "
                         f"{header.environment.describe()} ({run.display(run.plan_path)})")
        except RunStateError as exc:
            lines.append(f"  step 3: {exc.message}")
    else:
        lines.append("  step 3: not run yet")
    lines.append(_journal_line(run))
    undo = _undo_line(run)
    if undo:
        lines.append(undo)
    return lines


def _undo_line(run: RunFolder) -> str:
    """Undo's last outcome per merge, from update/undo_journal.jsonl ('' when undo never ran)."""
    try:
        events = read_journal(run.undo_journal_path)
    except RunStateError as exc:
        return f"  undo: {exc.message}"
    last = {str(e["subordinate_id"]): str(e.get("status")) for e in events
            if e.get("event") == "undo_result" and e.get("subordinate_id")}
    if not last:
        return ""
    return "  undo: " + ", ".join(f"{k}: {v}" for k, v in sorted(Counter(last.values()).items()))


def _journal_line(run: RunFolder) -> str:
    """Step 4's final outcomes, folded from the journal the way merge_actions_made.json is."""
    try:
        history = replay(read_journal(run.journal_path))
    except RunStateError as exc:
        return f"  step 4: {exc.message}"
    if not history:
        return "  step 4: not run yet"
    counts = Counter("unknown" if h.status is None else str(h.status) for h in history.values())
    return "  step 4: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
