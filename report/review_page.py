"""prepare/review.html: step 3's plan as one page to review before step 4 writes anything.

`render_review_page` is pure (the plan's header and merges, what the collector kept, optional related-row
counts in; HTML text out); `write_review_page` writes it atomically. Step 3 calls the writer inside the
temp folder that replaces prepare/, so the page always matches plan.jsonl and merges.csv beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from report.review_collect import ReviewCollector
from report.review_data import detail_array, review_document, review_summary, size_options
from report.templating import render
from report.verdicts import VERDICT_TEXT, verdict_of
from runfolder.files import atomic_write_text
from runfolder.plan_file import PlanHeader
from runfolder.state import PlannedMerge

NO_RELATED: Mapping[str, Mapping[str, int]] = MappingProxyType({})


def render_review_page(header: PlanHeader, merges: Sequence[PlannedMerge], review: ReviewCollector, *,
                       related: Mapping[str, Mapping[str, int]] = NO_RELATED) -> str:
    """The page's HTML. `review`: what the collector kept while the merges were planned; `related`:
    subordinate id -> {table: rows that move to the target} (when known)."""
    verdicts = [verdict_of(m) for m in merges]
    summary = review_summary(header, merges, verdicts, review, related)
    return render(
        "review.html.j2", "review.js", summary=summary, data=review_document(merges, verdicts, review, related),
        details=detail_array(merges, review), sizes=list(size_options(summary)),
        verdict_text={v.value: t for v, t in VERDICT_TEXT.items()},
    )


def write_review_page(path: Path, header: PlanHeader, merges: Sequence[PlannedMerge], review: ReviewCollector, *,
                      related: Mapping[str, Mapping[str, int]] = NO_RELATED) -> None:
    """Render the page and write it to `path` (the run folder's review_page, or its place in a temp folder)."""
    atomic_write_text(path, render_review_page(header, merges, review, related=related))
