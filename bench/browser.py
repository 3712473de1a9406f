"""Headless Chromium through selenium, for the page benchmark (bench/review_page.py) and the browser test
(tests/test_pages_in_browser.py): Debian's `chromium` and `chromium-driver` (or CHROMIUM / CHROMEDRIVER
naming others), a fresh profile each time, nothing that reaches the network on its own."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000")


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) paths, or None when either is missing."""
    browser = _program("CHROMIUM", "chromium", "chromium-browser")
    driver = _program("CHROMEDRIVER", "chromedriver", "/usr/bin/chromedriver")
    return (browser, driver) if browser and driver else None


def _program(variable: str, *names: str) -> str | None:
    """The program the environment variable names (when set), else the first of `names` found."""
    chosen = os.environ.get(variable)
    for name in [chosen] if chosen else names:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A selenium WebDriver for a fresh headless Chromium; quits it and removes its profile afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("Chromium and its driver are not installed (Debian: apt-get install chromium "
                           "chromium-driver).")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    for arg in ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = found[0]
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
