"""update/report.html: step 4's outcomes as one page: merged, failed (class, message, hint), skipped (reason),
verified. Rebuilt from the journal whenever merge_actions_made.json is (at the end of step 4, on Ctrl-C and
on errors), so it covers every run of step 4 on the folder, not only the last.

`render_report_page` is pure (merge_actions_made.json's document and the plan's merges in; HTML out);
`write_report_page` reads the plan for the records' names (the page is written without them when the plan
cannot be read) and writes the page atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from errors import RunStateError
from report.outcome_data import outcome_document, outcome_summary
from report.templating import render
from runfolder.files import atomic_write_text
from runfolder.folder import RunFolder
from runfolder.plan_file import read_plan
from runfolder.state import PlannedMerge

log = logging.getLogger(__name__)
NO_PLAN: Mapping[str, PlannedMerge] = MappingProxyType({})


def render_report_page(actions: Mapping[str, Any], planned: Mapping[str, PlannedMerge] = NO_PLAN) -> str:
    """The page's HTML. `actions`: merge_actions_made.json's document; `planned`: subordinate id -> its
    planned merge (names; missing ones show ids only)."""
    return render("report.html.j2", "report.js", summary=outcome_summary(actions),
                  data=outcome_document(actions, planned))


def write_report_page(run: RunFolder, actions: Mapping[str, Any]) -> None:
    """Write update/report.html for the document just written to merge_actions_made.json."""
    try:
        planned = read_plan(run.plan_path).by_subordinate()
    except RunStateError as exc:  # names are a nicety: the outcomes must be written whatever the plan's state
        log.warning("report.html without names: %s", exc.message)
        planned = {}
    atomic_write_text(run.report_page, render_report_page(actions, planned))
