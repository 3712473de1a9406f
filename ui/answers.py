"""The questions the steps ask, how each answer is checked, and where answers come from.

Two sources with one interface: `PromptAnswers` asks at the console (re-asking on a bad answer and
remembering good ones until menu option 5 clears them) and `FlagAnswers` takes command-line flags
(a missing required value is a usage error, never a prompt that hangs in a pipeline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataverse import validate_entity_name, validate_guid
from errors import ResolverError, UsageError
from runfolder.folder import RunFolder, resolve_run_folder
from ui.console import Console, parse_yes_no

TARGET_STRATEGIES = ("oldest_record", "newest_record", "most_complete", "most_recently_modified")


def parse_text(answer: str) -> str:
    if not answer.strip():
        raise UsageError("The answer is empty.", "Type a value.")
    return answer.strip()


def parse_max(answer: str) -> int | None:
    answer = answer.strip()
    if not answer or answer.lower() in ("all", "none"):
        return None
    try:
        value = int(answer)
    except ValueError:
        raise UsageError(f"'{answer}' is not a whole number.",
                         "Type a number such as 50, or press Enter for all.") from None
    if value < 1:
        raise UsageError(f"{value} is not a positive number.", "Type 1 or more, or press Enter for all.")
    return value


@dataclass(frozen=True)
class JobSelection:
    """The detection jobs step 2 (and waiting) works on: job ids, or the jobs file step 1 wrote."""

    job_ids: tuple[str, ...] = ()
    jobs_file: Path | None = None


def parse_job_ids(answer: str) -> tuple[str, ...]:
    """`id, id, ...` -> the ids (validated, lower-case, each once)."""
    ids = [validate_guid(part) for part in answer.split(",") if part.strip()]
    if not ids:
        raise UsageError("No job id given.", "Type one or more job ids separated by commas, or a jobs file name.")
    return tuple(dict.fromkeys(ids))


def parse_jobs(answer: str, work_dir: Path) -> JobSelection:
    """Job ids separated by commas, or the name of a jobs file in the working folder (detection_jobs_*.json)."""
    text = answer.strip().strip('"').strip("'")
    path = work_dir / text if text else work_dir
    if text.lower().endswith(".json") or (text and path.is_file()):
        if not path.is_file():
            raise UsageError(f"There is no jobs file {text} in {work_dir}.",
                             "Step 1 writes detection_jobs_<entity>.json; or type the job ids.")
        return JobSelection(jobs_file=path)
    try:
        return JobSelection(parse_job_ids(text))
    except UsageError as exc:
        raise UsageError(exc.message, "Type job ids separated by commas, or the name of the jobs file step 1 "
                                      "wrote (detection_jobs_<entity>.json).") from None


def parse_size(answer: str) -> int:
    value = parse_max(answer)
    if value is None or value < 2:
        raise UsageError(f"'{answer}' is not a group size.", "Type a whole number of 2 or more, such as 10.")
    return value


def parse_target(answer: str) -> str:
    value = answer.strip().lower()
    if value in TARGET_STRATEGIES:
        return value
    try:
        from planning import targets  # the registry also holds strategies users add
        if value in targets.STRATEGIES:
            return value
        names = sorted(targets.STRATEGIES)
    except ImportError:
        names = list(TARGET_STRATEGIES)
    raise UsageError(f"'{answer}' is not a target selection.", "Choose one of: " + ", ".join(names) + ".")


@dataclass(frozen=True)
class Question:
    prompt: str
    parse: Callable[[str], Any]
    default: str | None = None      # shown in [brackets]; Enter takes it
    flag: str = ""


def questions(work_dir: Path) -> dict[str, Question]:
    return {
        "entity": Question("Entity logical name (e.g. contact)", validate_entity_name, None, "--entity"),
        "view": Question("View name (system or personal)", parse_text, None, "--view"),
        "folder": Question("Run folder name (e.g. contact_merge_2026)",
                           lambda a: RunFolder(resolve_run_folder(a, work_dir)), None, "--folder"),
        "jobs": Question("Detection job ids (comma-separated), or the jobs file (detection_jobs_<entity>.json)",
                         lambda a: parse_jobs(a, work_dir), None, "--job-id or --jobs-file"),
        "max_duplicates": Question("Maximum number of duplicates to take (Enter for all)", parse_max, "", "--max"),
        "target": Question("Target selection (" + " / ".join(TARGET_STRATEGIES) + ")", parse_target,
                           "oldest_record", "--target"),
        "parenting_checks": Question("Perform parenting checks? (True/False)", parse_yes_no, "True",
                                     "--parenting-check"),
        "max_merges": Question("Maximum number of merges to run now (Enter for all)", parse_max, "", "--max"),
        "max_group_size": Question("Flag groups with more records than (step 3 leaves them out unless allowed)",
                                   parse_size, "10", "--max-group-size"),
        "max_undo": Question("Maximum number of merges to undo (Enter for all; the latest first)", parse_max, "",
                             "--max"),
    }


class PromptAnswers:
    """Answers typed at the console, remembered for later steps until cleared."""

    def __init__(self, console: Console, work_dir: Path) -> None:
        self.console = console
        self.questions = questions(work_dir)
        self.remembered: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        if key not in self.remembered:
            q = self.questions[key]
            self.remembered[key] = self.console.ask(q.prompt, q.parse, q.default)
        return self.remembered[key]

    def remember(self, key: str, value: Any) -> None:
        self.remembered[key] = value

    def confirm(self, prompt: str, default: bool = False, flag: str = "") -> bool:
        return self.console.confirm(prompt, default)

    def choose(self, prompt: str, options: list[str], error: ResolverError) -> int:
        """The index of the option the user picks by number."""
        self.console.say(prompt, *(f"    {n}: {o}" for n, o in enumerate(options, 1)))

        def pick(answer: str) -> int:
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return int(answer) - 1
            raise UsageError(f"'{answer}' is not one of the numbers above.", "Type a number from the list.")
        return self.console.ask("Number", pick)

    def forget(self, key: str) -> None:
        self.remembered.pop(key, None)

    def clear(self) -> None:
        self.remembered.clear()


class FlagAnswers:
    """Answers from command-line flags; never prompts."""

    def __init__(self, values: dict[str, Any], work_dir: Path, flags_on: set[str] | None = None) -> None:
        self.questions = questions(work_dir)
        self.values = values
        self.flags_on = flags_on or set()

    def get(self, key: str) -> Any:
        q = self.questions[key]
        raw = self.values.get(key)
        if raw is None:
            if q.default is None:
                raise UsageError(f"{q.flag} is required for this command.", f"Add {q.flag} VALUE.")
            raw = q.default
        return raw if not isinstance(raw, str) else q.parse(raw)

    def remember(self, key: str, value: Any) -> None:
        if self.values.get(key) is None:
            self.values[key] = value

    def confirm(self, prompt: str, default: bool = False, flag: str = "") -> bool:
        """Flags answer yes/no questions: the flag set means yes, absent means no (a question with no flag
        takes its default). Changing Dataverse (flag "yes") needs the flag: a pipeline never merges by default."""
        if not flag:
            return default
        if flag == "yes" and flag not in self.flags_on:
            raise UsageError("This changes Dataverse and cannot be undone.", "Add --yes to go ahead.")
        return flag in self.flags_on

    def choose(self, prompt: str, options: list[str], error: ResolverError) -> int:
        """A command cannot ask: the error says which flag decides."""
        raise error

    def forget(self, key: str) -> None:
        """Flags cannot be asked again: nothing to forget."""

    def clear(self) -> None:
        self.values.clear()
