"""What one run of step 4 did: counts, failures grouped by class with their hints, skips by reason,
verification mismatches, throttling and speed. Filled thread-safely as merges finish; no I/O."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from errors import DataverseError, OutcomeUnknownError
from runfolder.state import MergeOutcome

_UNKNOWN_HINT = "Run step 4 again: it asks Dataverse whether the merge took effect before sending it again."
_ELSEWHERE_HINT = "The subordinate is already merged into another record: check that merge in Dynamics."


def classify(exc: DataverseError | None, message: str) -> tuple[str, str]:
    """(failure class, one-line hint) for a failed merge, from failures.classify when it is available."""
    if "merged into another record" in message:
        return "merged_elsewhere", _ELSEWHERE_HINT
    if exc is None or isinstance(exc, OutcomeUnknownError):
        return "outcome_unknown", _UNKNOWN_HINT
    try:
        from merging.failure_classes import classify as classify_failure
    except ImportError:  # failures.py is optional for this step: fall back to one class
        return "other", exc.hint or ""
    failure_class, hint = classify_failure(exc.status, exc.code, message or exc.message)
    return str(failure_class), str(hint)


@dataclass
class MergeResult:
    """The outcome of run(): for the summary screen and for main.py's exit status."""

    journal_path: Path
    actions_path: Path
    merged: int = 0
    already_merged: int = 0
    failed: int = 0
    skipped: int = 0
    done_before: int = 0                      # done in an earlier run: not touched now
    failures_by_class: dict[str, tuple[int, str]] = field(default_factory=dict)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    verified: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    reprepare: list[str] = field(default_factory=list)  # records changed since prepare: run step 3 again
    throttled: int = 0
    throttle_wait_s: float = 0.0
    requests: int = 0
    elapsed_s: float = 0.0
    merges_per_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, outcome: MergeOutcome, verification: dict[str, Any] | None) -> None:
        with self._lock:
            setattr(self, outcome.status, getattr(self, outcome.status) + 1)
            if outcome.status == "failed":
                count, _ = self.failures_by_class.get(outcome.failure_class, (0, ""))
                self.failures_by_class[outcome.failure_class] = (count + 1, outcome.hint)
            elif outcome.status == "skipped":
                self.skip_reasons[outcome.error_message.split(" (")[0]] += 1
            if verification and verification.get("checked"):
                self.verified += 1
                self.mismatches += [{"subordinate_id": outcome.subordinate_id, "target_id": outcome.target_id, **m}
                                    for m in verification.get("mismatches", [])]

    def finish(self, elapsed_s: float, stats: Any, throttled_at_start: int) -> None:
        self.elapsed_s = elapsed_s
        self.merges_per_s = (self.merged + self.already_merged) / elapsed_s if elapsed_s > 0 else 0.0
        self.throttled = stats.throttled - throttled_at_start
        self.throttle_wait_s = stats.throttle_wait_s
        self.requests = stats.requests

    def counts(self) -> dict[str, int]:
        return {"merged": self.merged, "already_merged": self.already_merged, "failed": self.failed,
                "skipped": self.skipped, "done_before": self.done_before}

    def summary_lines(self) -> list[str]:
        lines = [f"Merged {self.merged}" + (f", {self.already_merged} found already merged" if self.already_merged
                                            else "") + f", {self.failed} failed, {self.skipped} skipped "
                 f"in {self.elapsed_s:.1f} s ({self.merges_per_s:.1f} merges/s)."]
        if self.done_before:
            lines.append(f"{self.done_before} were done in an earlier run and were not touched.")
        for cls, (count, hint) in sorted(self.failures_by_class.items(), key=lambda kv: -kv[1][0]):
            lines.append(f"  failed, {cls}: {count}" + (f" - {hint}" if hint else ""))
        for reason, count in self.skip_reasons.most_common():
            lines.append(f"  skipped: {count} x {reason}")
        if self.reprepare:
            lines.append(f"{len(self.reprepare)} records changed since prepare: run step 3 again for them.")
        if self.verified:
            lines.append(f"Verified {self.verified} targets after their merge: {len(self.mismatches)} mismatches.")
            lines += [f"  {m['target_id']} {m['field']}: expected {m['expected']!r}, found {m['actual']!r}"
                      for m in self.mismatches[:10]]
        if self.throttled:
            lines.append(f"Dataverse asked to slow down {self.throttled} times (429); the run waited as told.")
        lines.append(f"Journal: {self.journal_path}; results: {self.actions_path}")
        return lines
