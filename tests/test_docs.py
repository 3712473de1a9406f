"""The README documents what the tool offers: every menu option, every subcommand, both quick-start commands."""

from __future__ import annotations

import re
from pathlib import Path

from main import COMMANDS, MENU

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_menu_option_is_in_the_readme() -> None:
    for key, label, _ in MENU:
        assert f"| {key} | {label} |" in README, label


def test_every_subcommand_is_in_the_readme() -> None:
    for name in COMMANDS:
        assert re.search(rf"^python main\.py [^\n]*\b{name}\b", README, re.M), name


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if "pytest" in line).strip()
    assert f"\n{command}\n" in README
    assert "\npython -m pip install -r requirements.txt && python main.py --demo\n" in README
