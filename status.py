"""What a run folder holds so far: groups, planned merges, and merges done (from the journal)."""

from __future__ import annotations

import json

from errors import RunStateError
from run_folder import RunFolder


def describe(run: RunFolder) -> list[str]:
    lines = [f"Run folder: {run.root}"]
    if not run.root.exists():
        return lines + ["  (empty: start with step 2, Group duplicates)"]
    try:
        groups = run.read_duplicate_groups()
        size = sum(len(g.record_ids) for g in groups.groups)
        lines.append(f"  step 2: {len(groups.groups)} groups, {size} records of {groups.entity} "
                     f"from job {groups.job_id}")
    except RunStateError as exc:
        lines.append(f"  step 2: {exc.message}")
    if run.merges_csv.exists():
        with run.merges_csv.open(encoding="utf-8-sig") as fh:
            planned = max(0, sum(1 for _ in fh) - 1)
        lines.append(f"  step 3: {planned} merges planned in {run.display(run.merges_csv)}")
    else:
        lines.append("  step 3: not run yet")
    lines.append(_journal_line(run))
    return lines


def _journal_line(run: RunFolder) -> str:
    if not run.journal_path.exists():
        return "  step 4: not run yet"
    final: dict[str, str] = {}
    with run.journal_path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "result":
                final[entry.get("subordinate_id", "")] = entry.get("status", "")
    counts: dict[str, int] = {}
    for value in final.values():
        counts[value] = counts.get(value, 0) + 1
    return "  step 4: " + (", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing finished yet")
