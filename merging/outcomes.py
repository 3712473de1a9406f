"""What one run of step 4 did, and the sentences people read about it: counts, failures grouped by class with
their hints, skips by reason, verification mismatches, throttling and speed. Filled thread-safely as merges
finish; no I/O. Code decides on the enums (MergeStatus, SkipReason, FailureClass); the sentences are made here.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataverse.transport import ClientStats
from merging.failure_classes import HINTS, FailureClass
from runfolder.state import MergeOutcome, MergeStatus, SkipReason

SKIP_TEXT = {
    SkipReason.PREDICTED_FAILURE: "predicted to fail",
    SkipReason.EARLIER_LEFT_OUT: "an earlier merge into the same target was left out of merges.csv, and this one "
                                 "was planned on top of it: rerun step 3 to plan the rest without it",
    SkipReason.EARLIER_NOT_DONE: "an earlier merge into the same target did not happen, and this one was planned on "
                                 "top of it: rerun step 3 (Prepare duplicates), then step 4",
    SkipReason.SUBORDINATE_GONE: "the subordinate no longer exists",
    SkipReason.SUBORDINATE_MERGED_ELSEWHERE: "the subordinate was merged into another record",
    SkipReason.SUBORDINATE_INACTIVE: "the subordinate is inactive",
    SkipReason.TARGET_GONE: "the target no longer exists",
    SkipReason.TARGET_INACTIVE: "the target is inactive",
    SkipReason.SUBORDINATE_CHANGED: "the subordinate changed since prepare; run step 3 again",
    SkipReason.TARGET_CHANGED: "the target changed since prepare; run step 3 again",
    SkipReason.NOT_SELECTED: "an earlier Merge got no answer; checked: not merged; not selected this time",
    SkipReason.TOKEN_REFUSED: "not sent: Dataverse refused the sign-in, so the run stopped",
}


def skip_text(reason: SkipReason, detail: str = "") -> str:
    return f"{SKIP_TEXT[reason]} ({detail})" if detail else SKIP_TEXT[reason]


@dataclass
class MergeResult:
    """The outcome of a run of step 4: for the summary screen and for main.py's exit status."""

    journal_path: Path
    actions_path: Path
    merged: int = 0
    already_merged: int = 0
    failed: int = 0
    skipped: int = 0
    done_before: int = 0                      # done in an earlier run: not touched now
    failures_by_class: dict[str, tuple[int, str]] = field(default_factory=dict)
    skip_reasons: Counter[SkipReason] = field(default_factory=Counter)
    verified: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    reprepare: list[str] = field(default_factory=list)  # records changed since prepare: run step 3 again
    lists_restored: int = 0                   # subordinates whose list memberships were put back after a failure
    notes_failed: int = 0                     # merged targets whose note could not be created (merge --note)
    stopped: str = ""                         # why the run stopped before the end (a sentence), '' when it did not
    throttled: int = 0
    throttle_wait_s: float = 0.0
    requests: int = 0
    batches: int = 0                          # $batch requests that carried merges (merging/batches.py)
    batched: int = 0                          # the merges they carried
    elapsed_s: float = 0.0
    merges_per_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, outcome: MergeOutcome, verification: dict[str, Any] | None) -> None:
        with self._lock:
            status = outcome.status
            if status is MergeStatus.MERGED:
                self.merged += 1
            elif status is MergeStatus.ALREADY_MERGED:
                self.already_merged += 1
            elif status is MergeStatus.FAILED:
                self.failed += 1
                count, _ = self.failures_by_class.get(outcome.failure_class, (0, ""))
                self.failures_by_class[outcome.failure_class] = (count + 1, outcome.hint)
            else:
                self.skipped += 1
                reason = SkipReason(outcome.reason_code)
                self.skip_reasons[reason] += 1
                if reason.needs_prepare:
                    changed = outcome.subordinate_id if reason is SkipReason.SUBORDINATE_CHANGED else outcome.target_id
                    self.reprepare.append(changed)
            if verification and verification.get("checked"):
                self.verified += 1
                self.mismatches += [{"subordinate_id": outcome.subordinate_id, "target_id": outcome.target_id, **m}
                                    for m in verification.get("mismatches", [])]

    def finish(self, elapsed_s: float, stats: ClientStats, throttled_at_start: int) -> None:
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
        if self.stopped:
            lines.append(f"Stopped early: {self.stopped}")
        if self.done_before:
            lines.append(f"{self.done_before} were done in an earlier run and were not touched.")
        for cls, (count, hint) in sorted(self.failures_by_class.items(), key=lambda kv: -kv[1][0]):
            lines.append(f"  failed, {cls}: {count}" + (f" - {hint}" if hint else ""))
        for reason, count in self.skip_reasons.most_common():
            lines.append(f"  skipped: {count} x {SKIP_TEXT[reason]}")
        if self.reprepare:
            lines.append(f"{len(self.reprepare)} records changed since prepare: run step 3 again for them.")
        if self.lists_restored:
            lines.append(f"Marketing-list memberships put back for {self.lists_restored} subordinates whose merge "
                         "failed after the workaround had moved them.")
        if self.notes_failed:
            lines.append(f"{self.notes_failed} merged targets did not get their note (see resolver.log); the merges "
                         "stand.")
        if self.verified:
            lines.append(f"Verified {self.verified} targets after their merge: {len(self.mismatches)} mismatches.")
            lines += [f"  {m['target_id']} {m['field']}: expected {m['expected']!r}, found {m['actual']!r}"
                      for m in self.mismatches[:10]]
        if self.throttled:
            lines.append(f"Dataverse asked to slow down {self.throttled} times (429); the run waited as told.")
        if self.batches:
            lines.append(f"{self.batched} Merges went in {self.batches} $batch requests (quick Merges travel "
                         "together: Dataverse counts a $batch as one request).")
        lines.append(f"Journal: {self.journal_path}; results: {self.actions_path} (and report.html beside it, to "
                     "read in a browser)")
        return lines


def failure_hint(failure_class: FailureClass) -> str:
    return HINTS[failure_class]
