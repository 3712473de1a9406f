"""The lint step, run by the test command: ruff over everything, mypy over the tool's packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          check=False)


def test_ruff_reports_nothing() -> None:
    out = run("ruff", "check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_reports_nothing() -> None:
    out = run("mypy")  # files and strictness: [tool.mypy] in pyproject.toml
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout
