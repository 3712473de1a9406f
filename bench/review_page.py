"""Benchmark of prepare/review.html: the file's size and how soon it is usable in headless Chromium.

    python -m bench.review_page [--merges 5000] [--runs 3] [--json PATH] [--keep PATH]

Synthetic contacts in groups of 2-4 (bench.pure_steps' records: realistic columns, lookups with display
names, formula-like text, apostrophes, accents; some with active quotes or in marketing lists, parents on
random accounts) go through step 3's planner and review collector as step 3 runs them, then
`report.review_page.render_review_page` makes the page. Each run opens it from disk in a fresh headless
Chromium (bench/browser.py) and reads the page's own clock: `ready` is the time from navigation start until
its script has rendered the first page of groups and bound the filters (performance.now(), written by the
page itself); also the wall time of the navigation as selenium sees it, the time to apply the "predicted to
fail" filter, to show all columns, to turn to the next page, and a search (its 150 ms typing pause included).
Targets (issue 15): under 15 MB and usable within 3 s at 5,000 merges.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.browser import chromium
from bench.pure_steps import ENTITY_SETS, _groups, _ids, contact_meta
from dataverse import Environment
from planning.planner import Planner, plan_all
from planning.preflight import PreflightData
from planning.targets import get_strategy
from prepare_duplicates import _create_merge_result, fields_to_ignore
from report.review_collect import ReviewCollector
from report.review_page import render_review_page
from runfolder.plan_file import PlanHeader
from runfolder.state import Group, PlannedMerge

ENVIRONMENT = Environment("https://contoso.crm.dynamics.com/", "00000000-0000-4000-8000-00000000c0de")


def synthetic_plan(merges: int, seed: int = 5) -> tuple[PlanHeader, list[PlannedMerge], ReviewCollector]:
    """`merges` planned merges of synthetic contacts, as step 3 plans them, and what the collector kept."""
    rng = random.Random(seed)
    meta = contact_meta()
    accounts = _ids(50, rng)
    records: dict[str, dict[str, Any]] = {}
    groups = []
    for group in _groups(merges, rng, accounts):
        records.update((r["contactid"], r) for r in group)
        ids = tuple(r["contactid"] for r in group)
        groups.append(Group(min(ids), ids))
    every = list(records)
    checks = PreflightData(active_quotes={i: 1 for i in rng.sample(every, len(every) // 40)},
                           list_memberships={i: 2 for i in rng.sample(every, len(every) // 25)},
                           parents={i: records[i].get("_parentcustomerid_value") for i in every})
    planner = Planner(meta, _create_merge_result, fields_to_ignore, ENTITY_SETS, checks)
    review = ReviewCollector(None, [meta.primary_id, meta.primary_name])
    planned = plan_all(planner, groups, records, get_strategy("oldest_record"), review)
    return PlanHeader.new("contact", ENVIRONMENT, "oldest_record"), planned, review


_SEARCH = """
var done = arguments[arguments.length - 1];
var before = Number(document.body.getAttribute('data-rendered'));
var box = document.getElementById('filter-search');
var t0 = performance.now();
box.value = arguments[0];
box.dispatchEvent(new Event('input'));
(function wait() {
  if (Number(document.body.getAttribute('data-rendered')) > before) { done(performance.now() - t0); }
  else { setTimeout(wait, 2); }
}());
"""

_TIMED = """
var t0 = performance.now();
var node = document.querySelector(arguments[0]);
if (node.type === 'checkbox') { node.checked = !node.checked; node.dispatchEvent(new Event('change')); }
else if (node.tagName === 'SELECT') { node.value = arguments[1]; node.dispatchEvent(new Event('change')); }
else { node.click(); }
return performance.now() - t0;
"""


def measure(page: Path, search: str) -> dict[str, Any]:
    """One fresh Chromium: open the page from disk, then time a filter, the toggle, paging and a search."""
    with chromium() as driver:
        driver.set_script_timeout(30)
        start = time.perf_counter()
        driver.get(page.resolve().as_uri())
        navigation_s = time.perf_counter() - start
        ready_ms = float(driver.execute_script("return document.body.getAttribute('data-ready-ms')") or "nan")
        groups_shown = driver.execute_script("return document.querySelectorAll('section.group').length")
        next_ms = driver.execute_script(_TIMED, ".pager button.next")
        all_ms = driver.execute_script(_TIMED, "#show-all")
        fail_ms = driver.execute_script(_TIMED, "#filter-verdict", "fail")
        failing = driver.execute_script("return document.querySelectorAll('article.merge').length")
        driver.execute_script(_TIMED, "#filter-verdict", "")
        search_ms = driver.execute_async_script(_SEARCH, search)
    return {"ready_ms": round(ready_ms), "navigation_s": round(navigation_s, 3), "groups_on_first_page": groups_shown,
            "filter_fail_ms": round(fail_ms, 1), "merges_shown_predicted_to_fail": failing,
            "show_all_columns_ms": round(all_ms, 1), "next_page_ms": round(next_ms, 1),
            "search_ms_with_150ms_pause": round(search_ms, 1)}


def bench(merges: int, runs: int, keep: Path | None) -> dict[str, Any]:
    start = time.perf_counter()
    header, planned, review = synthetic_plan(merges)
    plan_s = time.perf_counter() - start
    start = time.perf_counter()
    html = render_review_page(header, planned, review)
    render_s = time.perf_counter() - start
    folder = Path(tempfile.mkdtemp(prefix="bench_review_"))
    page = keep or folder / "review.html"
    try:
        page.write_text(html, encoding="utf-8")
        size = page.stat().st_size
        measured = [measure(page, planned[len(planned) // 2].subordinate_name.split()[-1]) for _ in range(runs)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ready = [m["ready_ms"] for m in measured]
    return {"merges": len(planned), "groups": len({m.group_id for m in planned}),
            "size_mb": round(size / 1e6, 2), "plan_s": round(plan_s, 2), "render_s": round(render_s, 2),
            "ready_ms_median": statistics.median(ready), "ready_ms_max": max(ready), "runs": measured,
            "page": str(keep) if keep else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merges", type=int, default=5000, help="planned merges on the page (default 5000)")
    parser.add_argument("--runs", type=int, default=3, help="fresh browser sessions to measure (default 3)")
    parser.add_argument("--keep", type=Path, help="write the page here (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    r = bench(args.merges, args.runs, args.keep)
    print(f"review.html for {r['merges']:,} merges in {r['groups']:,} groups: {r['size_mb']} MB "
          f"(target < 15 MB), rendered by Python in {r['render_s']} s (planning them took {r['plan_s']} s)")
    print(f"usable in Chromium after {r['ready_ms_median']:.0f} ms (median of {len(r['runs'])}; max "
          f"{r['ready_ms_max']:.0f} ms; target < 3000 ms)")
    print(f"{'run':>4} {'ready ms':>9} {'nav s':>7} {'fail filter ms':>15} {'all columns ms':>15} "
          f"{'next page ms':>13} {'search ms':>10}")
    for n, m in enumerate(r["runs"], start=1):
        print(f"{n:>4} {m['ready_ms']:>9} {m['navigation_s']:>7} {m['filter_fail_ms']:>15} "
              f"{m['show_all_columns_ms']:>15} {m['next_page_ms']:>13} {m['search_ms_with_150ms_pause']:>10}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
