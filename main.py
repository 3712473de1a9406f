"""Dynamics Duplicate Resolver: the menu and the command line. Wires the parts; catches errors once.

    python main.py                 the menu (choose a .env file, sign in, options 1-5)
    python main.py --demo          the menu against a local emulator with a demo org
    python main.py merge --folder F --entity contact --yes     one step, no prompts
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

from dataverse import DataverseClient
from errors import ConfigError, OutputClosedError, ResolverError, UsageError

if TYPE_CHECKING:
    from dataverse_emulator import EmulatorHandle
from ui import workflow
from ui.answers import FlagAnswers, JobSelection, PromptAnswers
from ui.connect import connect
from ui.console import Console

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_OUTPUT_CLOSED = 0, 1, 2, 130, 141
MENU = [
    ("1", "Create duplicate detection job", workflow.detect),
    ("2", "Group duplicates", workflow.group),
    ("3", "Prepare duplicates", workflow.prepare),
    ("4", "Merge duplicates", workflow.merge),
    ("5", "Clear all and start again", None),
    ("6", "Show duplicate detection rules", workflow.show_rules),
    ("7", "Wait for a detection job", workflow.wait),
    ("8", "Show a run folder's status", workflow.status),
    ("9", "Undo merges", workflow.undo),
    ("0", "Exit", None),
]
LOCAL_COMMANDS = frozenset({"status"})
COMMANDS = {"detect": workflow.detect, "group": workflow.group, "prepare": workflow.prepare,
            "merge": workflow.merge, "status": workflow.status, "rules": workflow.show_rules,
            "wait": workflow.wait, "undo": workflow.undo}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="main.py", description="Bulk-merge duplicate records in Dataverse.")
    p.add_argument("command", nargs="?", choices=sorted(COMMANDS), help="run one step without the menu")
    p.add_argument("--env-file", help="the .env file to use (default: ask, or the first one found)")
    p.add_argument("--demo", action="store_true", help="run against a local emulator with a demo org")
    p.add_argument("--reset", action="store_true", help="with --demo: start the demo org afresh")
    p.add_argument("--entity")
    p.add_argument("--view")
    p.add_argument("--view-id", help="detect: the view's id, when two views have the same name")
    p.add_argument("--folder")
    p.add_argument("--job-id", help="group, wait: detection job id(s), comma-separated")
    p.add_argument("--jobs-file", help="group, wait: the jobs file detect wrote (detection_jobs_<entity>.json)")
    p.add_argument("--max", help="max duplicates (group), merges (merge) or merges to undo (undo) to take")
    p.add_argument("--target", help="oldest_record | newest_record | most_complete | most_recently_modified")
    p.add_argument("--max-group-size", type=_positive, help="group: flag groups with more records (default 10)")
    p.add_argument("--allow-large-groups", action="store_true", help="prepare: plan groups over --max-group-size")
    p.add_argument("--replan", action=argparse.BooleanOptionalAction, default=None,
                   help="prepare: after step 4 has begun, plan only what is left (from the records as they are now)")
    p.add_argument("--parenting-check", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--wait", action="store_true", help="detect: wait until the job is done")
    p.add_argument("--yes", action="store_true", help="merge: do not ask for confirmation")
    p.add_argument("--no-skip", action="store_true", help="merge: also try merges predicted to fail")
    p.add_argument("--marketing-workaround", action="store_true", help="merge: move list memberships first")
    p.add_argument("--check-modified", action="store_true", help="merge: skip records changed since prepare")
    p.add_argument("--note", action="store_true", help="merge: leave a note on each merged target")
    p.add_argument("--subordinate", action="append", default=[], metavar="ID",
                   help="undo: only the merge of this subordinate (repeat for more)")
    p.add_argument("--workers", type=_positive, help="cap on parallel requests: merges (adaptive, up to 32) "
                   "and bulk reads (8)")
    p.add_argument("--batch-size", type=_positive, help="merge: Merges per $batch request (default: decided by "
                   "how quick Merges are, at most 10; 1 sends each Merge alone)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p.parse_args(argv)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, not {text!r}")
    return value


def run_menu(app: workflow.App) -> int:
    while True:
        app.console.say("", f"  Environment: {app.environment_label}",
                        *(f"    {key}: {label}" for key, label, _ in MENU))
        try:
            choice = app.console.read("Choose an option: ").strip()
        except EOFError:
            return EXIT_OK
        action = next((a for key, _, a in MENU if key == choice), None)
        if choice == "0":
            return EXIT_OK
        if choice == "5":
            app.answers.clear()
            app.console.say("Cleared: the next option asks for everything again.")
        elif action is None:
            app.console.error(f"'{choice}' is not an option. Type a number from the list.")
        else:
            run_action(app, action)


def run_action(app: workflow.App, action: object) -> int:
    """One menu action; any failure returns to the menu with a one-line message."""
    try:
        return action(app)  # type: ignore[operator]
    except ResolverError as exc:
        app.console.error(str(exc))
        if exc.answer:
            app.answers.forget(exc.answer)   # asked again next time, not repeated
    except KeyboardInterrupt:
        app.console.say("", "Cancelled. Back to the menu.")
    except EOFError:
        app.console.say("Cancelled.")
    except OutputClosedError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug in one step must not end the session with a traceback
        logging.getLogger(__name__).exception("unexpected error in a menu action")
        app.console.error(f"Unexpected error ({type(exc).__name__}: {exc}). Details are in resolver.log.")
    return EXIT_FAILURES


def flag_answers(args: argparse.Namespace, work_dir: Path) -> FlagAnswers:
    if args.job_id and args.jobs_file:
        raise UsageError("Give --job-id or --jobs-file, not both.")
    jobs = JobSelection(jobs_file=(work_dir / args.jobs_file).resolve()) if args.jobs_file else args.job_id
    values = {"entity": args.entity, "view": args.view, "folder": args.folder, "jobs": jobs,
              "max_duplicates": args.max, "max_merges": args.max, "target": args.target,
              "parenting_checks": args.parenting_check, "max_undo": args.max,
              "max_group_size": str(args.max_group_size) if args.max_group_size else None}
    on = {name for name, flag in (("wait", args.wait), ("yes", args.yes), ("skip", not args.no_skip),
                                  ("marketing_workaround", args.marketing_workaround), ("note", args.note),
                                  ("allow_large_groups", args.allow_large_groups)) if flag}
    return FlagAnswers(values, work_dir, on)


def start_log(work_dir: Path) -> None:
    """Log to resolver.log in the working folder until a run folder is chosen (then to the run's own)."""
    root = logging.getLogger()
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        handler = logging.FileHandler(work_dir / "resolver.log", encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def main(argv: list[str] | None = None, *, stdin: TextIO | None = None, stdout: TextIO | None = None,
         work_dir: Path | None = None) -> int:
    args = parse_args(argv)
    console = Console(stdin, stdout)
    work_dir = (work_dir or Path.cwd()).resolve()
    interactive = args.command is None
    start_log(work_dir)
    handle: EmulatorHandle | None = None
    try:
        if args.command in LOCAL_COMMANDS:   # reads the run folder only: no sign-in needed
            client: DataverseClient = cast(DataverseClient, workflow.NotConnected())
            label = "(not signed in)"
        else:
            connection = connect(args, console, work_dir, interactive)
            client, label, handle = connection.client, connection.label, connection.emulator
        answers = PromptAnswers(console, work_dir) if interactive else flag_answers(args, work_dir)
        options = {"workers": args.workers, "batch_size": args.batch_size, "check_modified": args.check_modified,
                   "replan": args.replan, "view_id": args.view_id, "subordinates": args.subordinate}
        app = workflow.App(client, console, answers, work_dir, options, environment_label=label)
        return run_menu(app) if interactive else COMMANDS[args.command](app)
    except OutputClosedError:  # `... | head`: the reader went away; what was sent is journaled
        return EXIT_OUTPUT_CLOSED
    except (UsageError, ConfigError) as exc:
        console.error(str(exc))
        return EXIT_USAGE
    except ResolverError as exc:
        console.error(str(exc))
        return EXIT_FAILURES
    except (KeyboardInterrupt, EOFError):
        console.say("Interrupted.")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one boundary: a bug must not show a traceback
        logging.getLogger(__name__).exception("unexpected error")
        if args.debug:
            raise
        console.error(f"Unexpected error ({type(exc).__name__}: {exc}). Details are in resolver.log; "
                      "rerun with --debug to see the traceback.")
        return EXIT_FAILURES
    finally:
        if handle is not None:
            handle.stop()


if __name__ == "__main__":
    sys.exit(main())
