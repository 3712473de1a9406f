"""review.html and report.html in a real browser: headless Chromium (selenium, bench/browser.py) opens both
pages from disk after the demo org's run (steps 1-4 through main.main against the emulator), with a record
named `<script>alert(1)</script>` in a group. Checked: the sections are there, no request leaves the page,
filters hide what they should, the search narrows, "show all columns" shows more, names and values that look
like HTML show as text and run nothing.

Skipped when Chromium is missing on a developer machine; CI (.ci/run) installs it and sets REQUIRE_BROWSER=1,
which makes a missing browser a failure. One browser and one demo run serve every test here.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.browser import chromium, find_chromium
from dataverse_emulator import start_emulator
from main import main

pytestmark = pytest.mark.slow

TOKEN = "browser-test-token"
VIEW = "Active Contacts for Duplicate Checking"
SCRIPT_NAME = "<script>alert(1)</script>"                      # the target's name (the older record)
IMG_NAME = "<img src=x onerror=\"window.__xss='name'\">"       # the subordinate's name
SCRIPT_VALUE = "</script><script>window.__xss='value'</script>"  # a value the merge writes to the target


def _browser_or_skip() -> None:
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -r requirements-dev.txt)")
    if find_chromium() is None:
        missing.append("Chromium and its driver (apt-get install chromium chromium-driver)")
    if missing:
        why = "this test needs " + " and ".join(missing)
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"{why}; REQUIRE_BROWSER=1 (set by .ci/run) makes that a failure", pytrace=False)
        pytest.skip(why)


def _drive(work: Path, argv: list[str]) -> str:
    out = io.StringIO()
    code = main(argv, stdin=io.StringIO(""), stdout=out, work_dir=work)
    assert code in (0, 1), out.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo org's run folder after steps 1-4, with the script-named pair merged."""
    _browser_or_skip()
    org = start_emulator("demo", seed=7, job_seconds=0.3)
    try:
        org.store.insert("contact", {"firstname": "Mallory", "lastname": "Script", "fullname": SCRIPT_NAME,
                                     "emailaddress1": "script@dup.example", "createdon": "2016-03-01T00:00:00Z"})
        org.store.insert("contact", {"firstname": "Mallory", "lastname": "Script", "fullname": IMG_NAME,
                                     "emailaddress1": "script@dup.example", "jobtitle": SCRIPT_VALUE,
                                     "createdon": "2023-03-01T00:00:00Z"})
        work = tmp_path_factory.mktemp("pages")
        (work / ".env").write_text(f"ENVIRONMENT_URI={org.url}\nAUTH_MODE=access_token\n", encoding="utf-8")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ACCESS_TOKEN", TOKEN)
            out = _drive(work, ["detect", "--entity", "contact", "--view", VIEW, "--wait"])
            job = re.search(r"detection job ([0-9a-f-]{36})", out)
            assert job, out
            base = ["--entity", "contact", "--folder", "run"]
            _drive(work, ["group", *base, "--job-id", job.group(1)])
            _drive(work, ["prepare", *base, "--target", "oldest_record"])
            _drive(work, ["merge", *base, "--no-parenting-check", "--yes"])
        yield work / "run"
    finally:
        org.stop()


@pytest.fixture(scope="module")
def browser(run: Path) -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def _open(browser: Any, page: Path) -> None:
    assert page.is_file(), page
    browser.get(page.resolve().as_uri())
    assert browser.execute_script("return document.body.getAttribute('data-ready-ms')"), "the page's script ran"


def _no_script_ran(browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 - the property raises when no alert is open
    assert browser.execute_script("return typeof window.__xss") == "undefined"


def _choose(browser: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", select_id)).select_by_value(value)


def _shown(browser: Any, selector: str) -> list[Any]:
    return list(browser.find_elements("css selector", selector))


def _search(browser: Any, text: str) -> None:
    """Type into the search box as a person would (select all, delete, type) and wait for the page to render."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    before = browser.execute_script("return document.body.getAttribute('data-rendered')")
    box = browser.find_element("id", "filter-search")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE, text)
    WebDriverWait(browser, 5).until(
        lambda d: d.execute_script("return document.body.getAttribute('data-rendered')") != before)


def test_review_page_sections_and_no_network(browser: Any, run: Path) -> None:
    _open(browser, run / "prepare" / "review.html")
    for section in ("summary", "findings", "top-fields", "groups-section", "filters"):
        assert browser.find_element("id", section).is_displayed(), section
    merges = int(browser.find_element("id", "count-merges").text)
    assert merges > 100
    assert len(_shown(browser, "section.group")) == 20          # the first page of groups, not all of them
    assert "active_quote" in browser.find_element("id", "findings").text   # the demo's active quotes
    assert browser.find_element("css selector", "article.merge a").get_attribute("href").endswith(".csv")
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    _no_script_ran(browser)


def test_review_filters_search_and_all_columns(browser: Any, run: Path) -> None:
    _open(browser, run / "prepare" / "review.html")
    predicted = int(browser.find_element("id", "count-fail").text)
    assert predicted > 0
    _choose(browser, "filter-verdict", "fail")
    verdicts = [a.get_attribute("data-verdict") for a in _shown(browser, "article.merge")]
    assert len(verdicts) == predicted and set(verdicts) == {"fail"}
    _choose(browser, "filter-verdict", "")
    _choose(browser, "filter-size", "4")
    groups = _shown(browser, "section.group")
    assert groups and all("Group of 4 records" in g.find_element("css selector", "h3").text for g in groups)
    _choose(browser, "filter-size", "")
    _search(browser, "script@dup.example")                       # by e-mail
    (only,) = _shown(browser, "article.merge")
    merge = only.get_attribute("data-subordinate")
    _search(browser, merge[:13])                                 # by id
    assert [a.get_attribute("data-subordinate") for a in _shown(browser, "article.merge")] == [merge]
    rows = len(_shown(browser, "table.values tbody tr"))
    browser.find_element("id", "show-all").click()
    assert len(_shown(browser, "table.values tbody tr")) > rows
    browser.find_element("id", "show-all").click()
    _search(browser, "")
    assert len(_shown(browser, "section.group")) == 20


def test_review_shows_html_in_names_and_values_as_text(browser: Any, run: Path) -> None:
    _open(browser, run / "prepare" / "review.html")
    _search(browser, "script@dup.example")
    (merge,) = _shown(browser, "article.merge")
    text = merge.text
    assert SCRIPT_NAME in text and IMG_NAME in text
    written = merge.find_element("css selector", "tr[data-column='jobtitle'] td.writes")
    assert written.text == SCRIPT_VALUE and written.is_displayed()
    assert not _shown(browser, "article.merge img") and not _shown(browser, "#groups script")
    _no_script_ran(browser)


def test_report_page_outcomes_filters_and_escaping(browser: Any, run: Path) -> None:
    _open(browser, run / "update" / "report.html")
    for section in ("summary", "failures", "skips", "verification", "outcomes"):
        assert browser.find_element("id", section).is_displayed(), section
    merged = int(browser.find_element("id", "count-merged").text)
    skipped = int(browser.find_element("id", "count-skipped").text)
    assert merged > 100 and skipped > 0                          # the active quotes were skipped
    assert "predicted to fail" in browser.find_element("id", "skips").text
    assert int(browser.find_element("id", "count-verified").text) > 0
    _choose(browser, "filter-status", "skipped")
    statuses = {r.get_attribute("data-status") for r in _shown(browser, "#rows tr")}
    assert statuses == {"skipped"} and len(_shown(browser, "#rows tr")) == min(skipped, 100)
    _choose(browser, "filter-status", "")
    _search(browser, "script")
    (row,) = _shown(browser, "#rows tr")
    assert row.get_attribute("data-status") == "merged"
    assert SCRIPT_NAME in row.text and IMG_NAME in row.text
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    _no_script_ran(browser)
