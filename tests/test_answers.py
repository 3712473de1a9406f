"""Answers: prompts re-ask on bad input and remember; flags never prompt and name what is missing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from errors import UsageError
from ui.answers import FlagAnswers, JobSelection, PromptAnswers, parse_max, parse_target
from ui.console import Console, parse_yes_no


def console_with(lines: list[str]) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(io.StringIO("".join(f"{line}\n" for line in lines)), out), out


def test_bad_answers_are_explained_and_asked_again(tmp_path: Path) -> None:
    console, out = console_with(["", "  ", "Contact", "con tact", "x;drop", "contact"])
    answers = PromptAnswers(console, tmp_path)
    assert answers.get("entity") == "contact"
    text = out.getvalue()
    assert text.count("! ") == 5 and "Traceback" not in text


def test_answers_are_remembered_until_cleared(tmp_path: Path) -> None:
    console, _ = console_with(["contact", "account"])
    answers = PromptAnswers(console, tmp_path)
    assert answers.get("entity") == "contact"
    assert answers.get("entity") == "contact"
    answers.clear()
    assert answers.get("entity") == "account"


@pytest.mark.parametrize("bad", ["abc", "-3", "0", "1.5", "1e3"])
def test_max_must_be_a_positive_whole_number(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_max(bad)


def test_max_blank_means_all() -> None:
    assert parse_max("") is None and parse_max(" all ") is None and parse_max(" 12 ") == 12


def test_folder_outside_the_working_folder_is_refused_then_a_good_one_taken(tmp_path: Path) -> None:
    console, out = console_with(["../escape", "/tmp", "run1"])
    answers = PromptAnswers(console, tmp_path)
    assert answers.get("folder").root == (tmp_path / "run1").resolve()
    assert out.getvalue().count("outside the working folder") == 2


def test_job_ids_must_be_guids_or_a_jobs_file(tmp_path: Path) -> None:
    one, two = "6f7c1c2e-1111-2222-3333-444455556666", "6f7c1c2e-1111-2222-3333-444455557777"
    console, out = console_with(["not-a-guid", f"{one}, nope", "missing.json",
                                 "{6F7C1C2E-1111-2222-3333-444455556666}, " + two + f",{one}"])
    assert PromptAnswers(console, tmp_path).get("jobs") == JobSelection((one, two))   # each id once
    text = out.getvalue()
    assert text.count("is not a record id") == 2 and "There is no jobs file missing.json" in text
    (tmp_path / "detection_jobs_contact.json").write_text("{}", encoding="utf-8")
    console, _ = console_with(["detection_jobs_contact.json"])
    expected = JobSelection(jobs_file=tmp_path / "detection_jobs_contact.json")
    assert PromptAnswers(console, tmp_path).get("jobs") == expected
    with pytest.raises(UsageError, match="--job-id or --jobs-file is required"):
        FlagAnswers({}, tmp_path).get("jobs")
    assert FlagAnswers({"jobs": f"{one},{two}"}, tmp_path).get("jobs").job_ids == (one, two)


def test_ctrl_d_at_a_prompt_raises_eof(tmp_path: Path) -> None:
    console, _ = console_with([])
    with pytest.raises(EOFError):
        PromptAnswers(console, tmp_path).get("entity")


def test_flags_never_prompt_and_name_the_missing_flag(tmp_path: Path) -> None:
    answers = FlagAnswers({"entity": "contact"}, tmp_path)
    assert answers.get("entity") == "contact"
    with pytest.raises(UsageError, match="--folder is required"):
        answers.get("folder")
    assert answers.get("target") == "oldest_record"
    assert answers.get("parenting_checks") is True
    assert answers.get("max_merges") is None
    with pytest.raises(UsageError, match="--yes"):
        answers.confirm("Merge?", flag="yes")
    assert FlagAnswers({}, tmp_path, {"yes"}).confirm("Merge?", flag="yes") is True


def test_yes_no_and_target_parsing() -> None:
    assert parse_yes_no("True") is True and parse_yes_no(" n ") is False
    with pytest.raises(UsageError):
        parse_yes_no("maybe")
    assert parse_target(" Newest_Record ") == "newest_record"
    with pytest.raises(UsageError, match="oldest_record"):
        parse_target("youngest")


def test_progress_in_a_pipeline_is_a_line_every_few_seconds_and_the_last() -> None:
    console, out = console_with([])
    for n in range(100):
        console.progress(f"{n}/100")
    console.progress("100/100", final=True)
    assert out.getvalue().splitlines() == ["0/100", "100/100"]
