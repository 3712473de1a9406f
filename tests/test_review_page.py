"""report/review_page.py and review_data.py: prepare/review.html rendered from planned merges (pure, no
browser: tests/test_pages_in_browser.py opens the page in Chromium), and step 3 writing it beside merges.csv."""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builders import CONTACT, ENTITY_SETS, S1, S2, T, contact
from markupsafe import escape

import prepare_duplicates as prep
from dataverse import Environment
from dataverse_emulator import EmulatorHandle
from merging.failure_classes import HINTS, FailureClass
from planning import step
from planning.audit_files import AuditRows, AuditWriter
from planning.planner import Planner, plan_all
from planning.preflight import SEVERITY, PreflightData
from planning.targets import get_strategy
from report.review_collect import ReviewCollector, compact
from report.review_page import render_review_page
from report.verdicts import failure_class_of
from runfolder.plan_file import PlanHeader
from runfolder.state import Group, PlannedMerge, Severity

SCRIPT = "<script>alert(1)</script>"
END_SCRIPT = "</script><script>alert(2)</script>"
IMG = "<img src=x onerror=alert(3)> & 'quoted' \"double\""
HEADER = PlanHeader.new("contact", Environment("https://contoso.crm.dynamics.com/", "org-1"), "oldest_record")


def plan(groups: list[list[dict[str, Any]]], checks: PreflightData | None = None,
         limit: int = 20_000) -> tuple[list[PlannedMerge], ReviewCollector]:
    """Step 3's planning loop over `groups` of contact rows, with the review collector as its audit sink."""
    planner = Planner(CONTACT, prep._create_merge_result, prep.fields_to_ignore, ENTITY_SETS,
                      checks or PreflightData())
    records = {r["contactid"]: r for g in groups for r in g}
    review = ReviewCollector(None, ["contactid", "fullname"], limit=limit)
    merges = plan_all(planner, [Group(min(r["contactid"] for r in g), tuple(r["contactid"] for r in g))
                                for g in groups], records, get_strategy("oldest_record"), review)
    return merges, review


def page_data(page: str, element: str = "data") -> Any:
    """The JSON in one of the page's data elements (`data`, or `details`: every merge's values)."""
    found = re.search(rf'<script type="application/json" id="{element}">(.*?)</script>', page, re.S)
    assert found, f"#{element} is in the page"
    return json.loads(found.group(1))


def rid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def test_names_and_values_that_look_like_html_stay_text() -> None:
    merges, review = plan([[contact(T, fullname=SCRIPT, jobtitle=None),
                            contact(S1, "2021-01-01T00:00:00Z", fullname=END_SCRIPT, jobtitle=IMG,
                                    emailaddress1="x@example.com")]])
    page = render_review_page(HEADER, merges, review)
    assert page.count("<script") == 3 and page.count("</script>") == 3   # data, details and the page's script
    for raw in (SCRIPT, END_SCRIPT, "<img"):
        assert raw not in page
    data = page_data(page)
    (m,) = data["merges"]
    assert (data["groups"][0]["tn"], m["sn"]) == (SCRIPT, END_SCRIPT)    # the JSON gives back the exact text
    (detail,) = page_data(page, "details")
    assert IMG in detail["s"] and IMG in detail["w"].values()
    assert "'" not in page[page.index('id="data">'):page.rindex("<script>")]  # quotes escaped as well


def test_the_page_is_self_contained_and_runs_only_its_own_script() -> None:
    merges, review = plan([[contact(T), contact(S1, "2021-01-01T00:00:00Z", jobtitle="CEO")]])
    page = render_review_page(HEADER, merges, review)
    assert not re.search(r"<(link|img|iframe|object)\b|\bsrc=", page)
    policy = html_lib.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1))
    assert "default-src 'none'" in policy
    code = page[page.rindex("<script>") + len("<script>"):page.rindex("</script>")]
    digest = base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy                      # that script and no other


def test_summary_counts_findings_with_hints_and_changed_fields() -> None:
    groups = [[contact(T, jobtitle=None), contact(S1, "2021-01-01T00:00:00Z", jobtitle="CEO"),
               contact(S2, "2022-01-01T00:00:00Z", telephone1="+1 555")],
              [contact(rid(11)), contact(rid(12), "2021-01-01T00:00:00Z", jobtitle="CTO")]]
    merges, review = plan(groups, PreflightData(active_quotes={S2: 1}, list_memberships={rid(12): 1}))
    page = render_review_page(HEADER, merges, review)
    assert re.search(r'id="count-groups">2<', page) and re.search(r'id="count-merges">3<', page)
    assert re.search(r'id="count-fail">1<', page) and re.search(r'id="count-conditional">1<', page)
    assert escape(HINTS[FailureClass.ACTIVE_QUOTE]) in page
    assert escape(HINTS[FailureClass.MARKETING_PLUGIN]) in page
    top = page[page.index('id="top-fields"'):]
    assert re.search(r"<code>jobtitle</code></td><td class=\"num\">2<", top)
    assert 'id="related"' not in page and 'id="limit-note"' not in page
    data = page_data(page)
    assert [m["v"] for m in data["merges"]] == ["ok", "fail", "conditional"]
    assert [data["groups"][g]["n"] for g in range(2)] == [3, 2]
    assert data["groups"][0]["m"] == [0, 1]
    assert [data["fields"][f] for f in data["merges"][0]["c"]] == ["jobtitle"]


def test_related_rows_show_when_given() -> None:
    merges, review = plan([[contact(T), contact(S1, "2021-01-01T00:00:00Z")]])
    page = render_review_page(HEADER, merges, review, related={S1: {"task": 3, "annotation": 1}})
    related = page[page.index('<table id="related">'):]
    assert related.index("task") < related.index("annotation")            # most rows first
    assert page_data(page)["merges"][0]["r"] == {"task": 3, "annotation": 1}


def test_the_detail_keeps_what_differs_and_what_changes() -> None:
    rows = AuditRows(S1, subordinate={"contactid": S1, "jobtitle": "CEO", "donotemail": True, "city": "Oslo"},
                     target={"contactid": T, "donotemail": False, "city": "Oslo", "telephone1": "+1"},
                     merge_function={"jobtitle": "CEO", "donotemail": True},
                     target_after_merge={"contactid": T, "jobtitle": "CEO", "donotemail": True, "city": "Oslo",
                                         "telephone1": "+1"})
    d = compact(rows, ["contactid"])
    assert d.columns == ("contactid", "city", "donotemail", "jobtitle", "telephone1")
    assert d.subordinate == (S1, "Oslo", "True", "CEO", None) and d.target == (T, "Oslo", "False", None, "+1")
    assert d.writes == {2: "True", 3: "CEO"} and d.after == {2: "True", 3: "CEO"}   # unchanged cells left out


def test_large_runs_keep_values_for_the_first_merges_only() -> None:
    groups = [[contact(rid(10 * g)), contact(rid(10 * g + 1), "2021-01-01T00:00:00Z", jobtitle=f"J{g}",
                                           emailaddress1=f"p{g}@example.com")] for g in range(1, 6)]
    merges, review = plan(groups, limit=2)
    assert (len(review.details), review.omitted) == (2, 3)
    page = render_review_page(HEADER, merges, review)
    assert 'id="limit-note"' in page and "first 2 merges" in page
    data = page_data(page)
    assert [d is not None for d in page_data(page, "details")] == [True, True, False, False, False]
    assert data["merges"][4]["e"] == ["p5@example.com"]                   # still found by its e-mail
    assert "e" not in data["merges"][0]                                   # (the script finds it in the values)


def test_the_collector_hands_every_merge_on_to_the_audit_writer(tmp_path: Path) -> None:
    with AuditWriter(tmp_path, ["contactid"]) as writer:
        collector = ReviewCollector(writer, ["contactid"], limit=1)
        for sub in (S1, S2):
            collector.add(AuditRows(sub, {"contactid": sub}, {"contactid": T}, {}, {"contactid": T}))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{S1}.csv", f"{S2}.csv"])
    assert (tmp_path / f"{S2}.csv").read_text("utf-8-sig").splitlines()[0] == "row,contactid"
    assert list(collector.details) == [S1]


def test_every_failing_preflight_code_names_a_failure_class() -> None:
    for code, severity in SEVERITY.items():
        assert (failure_class_of(code) is None) == (severity is Severity.WARN), code


def test_five_thousand_merges_fit_in_fifteen_megabytes() -> None:
    from bench.review_page import synthetic_plan

    header, merges, review = synthetic_plan(1000)               # the budget per merge, on a fifth of them
    size = len(render_review_page(header, merges, review).encode("utf-8"))
    assert size < 15e6 / 5, f"{size / 1e6:.1f} MB for 1,000 merges"


def test_step_3_writes_the_page_beside_merges_csv(make_emulator: Callable[..., EmulatorHandle],
                                                  tmp_path: Path) -> None:
    from test_prepare_step import client_for, scenario

    dv = make_emulator("empty")
    run = scenario(dv, tmp_path)
    prep.run(client_for(dv), run, step.PrepareSettings("contact"))
    assert run.review_page.parent == run.merges_csv.parent
    page = run.review_page.read_text(encoding="utf-8")
    data = page_data(page)
    assert [(m["s"], m["v"]) for m in data["merges"]] == [(S1, "fail"), (S2, "fail"), (data["merges"][2]["s"],
                                                                                      "conditional")]
    assert "hierarchy_loop" in page and all(page_data(page, "details"))
    assert not list(run.prepare_dir.glob(".*"))                           # written inside the replaced folder


def test_an_empty_plan_still_makes_a_page() -> None:
    page = render_review_page(HEADER, [], ReviewCollector())
    assert re.search(r'id="count-merges">0<', page) and "Nothing predicts a refusal." in page
    assert page_data(page)["merges"] == [] and page_data(page, "details") == []


def test_merge_detail_json_is_what_jinja2s_tojson_writes() -> None:
    """detail_json writes with orjson (a third of the time): the text must be exactly Jinja2's, escapes included."""
    from jinja2.utils import htmlsafe_json_dumps

    from report.review_collect import MergeDetail, Names, detail_json

    detail = MergeDetail(("fullname", "description", "x"), ("<script>alert('x')</script> & é\u2028", "\t=1", None),
                         (None, '"quoted"\\n', "1"), {0: "w", 2: None}, {1: "z"})
    mine, theirs = Names(), Names()
    expected = htmlsafe_json_dumps({"c": list(map(theirs, detail.columns)), "s": detail.subordinate,
                                    "t": detail.target, "w": detail.writes, "a": detail.after},
                                   ensure_ascii=False, separators=(",", ":"))
    assert str(detail_json(detail, mine)) == str(expected)
    assert "<" not in str(expected) and "\\u003cscript" in str(expected)
