"""The steps as the user drives them: gather answers, run a step module, say what was written and
what to do next. Shared by the menu and the command line; no HTTP or file formats here.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import create_detection_job as detect_step
import group_duplicates as group_step
from dataverse import DataverseClient
from dataverse.duplicate_rules import describe, published_rules
from dataverse.environment import normalize_uri
from errors import ResolverError, RunStateError, StepFourStartedError, UsageError, about
from planning import step
from runfolder.detection_jobs import DetectionJobs, JobState, jobs_file_path, load_jobs, save_jobs
from runfolder.folder import RunFolder
from ui.answers import JobSelection
from ui.console import Console

log = logging.getLogger(__name__)


class Answers(Protocol):
    def get(self, key: str) -> Any: ...
    def remember(self, key: str, value: Any) -> None: ...
    def confirm(self, prompt: str, default: bool = False, flag: str = "") -> bool: ...
    def choose(self, prompt: str, options: list[str], error: ResolverError) -> int: ...
    def forget(self, key: str) -> None: ...
    def clear(self) -> None: ...


class NotConnected:
    """Stands in for the client in commands that only read the run folder; any use is a bug we report."""

    def __getattr__(self, name: str) -> Any:
        raise UsageError("This command works on the run folder only and is not signed in to Dataverse.")


@dataclass
class App:
    """What every step gets: the client, the console, where answers come from, the working folder."""

    client: DataverseClient
    console: Console
    answers: Answers
    work_dir: Path
    options: dict[str, Any] = field(default_factory=dict)   # command-line only switches (wait, workers...)
    log_handler: logging.Handler | None = None
    environment_label: str = ""    # "prod.env -> https://...", shown above the menu

    def folder(self, *, create: bool = False) -> RunFolder:
        """The run folder; only step 2 creates it (a mistyped name elsewhere must not leave a folder behind)."""
        run: RunFolder = self.answers.get("folder")
        if create:
            run.root.mkdir(parents=True, exist_ok=True)
        if run.root.is_dir():
            attach_run_log(self, run)
        return run


def attach_run_log(app: App, run: RunFolder) -> None:
    """Log to resolver.log in the run folder (never tokens: dataverse.py logs no headers)."""
    if app.log_handler is not None and getattr(app.log_handler, "baseFilename", "") == str(run.log_path):
        return
    root = logging.getLogger()
    if app.log_handler is not None:
        root.removeHandler(app.log_handler)
        app.log_handler.close()
    handler = logging.FileHandler(run.log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(threadName)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    app.log_handler = handler


def show_rules(app: App) -> int:
    entity = app.answers.get("entity")
    detect_step.check_entity(app.client, entity)
    rules = published_rules(app.client, entity)
    if not rules:
        app.console.say(f"No published duplicate detection rule for {entity}: a detection job would fail.",
                        "Publish one in Settings > Data Management > Duplicate Detection Rules.")
        return 0
    app.console.say(f"Published duplicate detection rules for {entity} (everything they match will be merged):")
    for rule in rules:
        app.console.say(*describe(rule))
    return 0


def detect(app: App) -> int:
    entity = app.answers.get("entity")
    detect_step.check_entity(app.client, entity)   # before asking for the view: a typo is caught at once
    settings = detect_step.DetectSettings(entity, app.answers.get("view"), view_id=app.options.get("view_id") or "")
    try:
        plan = detect_step.plan_job(app.client, settings)
    except detect_step.AmbiguousViewError as exc:  # the menu asks which; a command needs --view-id
        views = exc.views
        n = app.answers.choose(f"{len(views)} views have that name. Which one?",
                               [f"{v.name} ({v.kind} view, id {v.view_id})" for v in views], exc)
        settings = replace(settings, view_id=views[n].view_id)
        plan = detect_step.plan_job(app.client, settings)
    app.console.say(f"View: {plan.view.name} ({plan.view.kind} view)")
    if plan.rules:
        app.console.say("Published duplicate detection rules (a strict rule matters: everything it finds is merged):")
        for rule in plan.rules:
            app.console.say(*describe(rule))
    result = detect_step.start(app.client, settings, plan)
    path = jobs_file_path(app.work_dir, entity)
    save_jobs(path, result.jobs)
    app.answers.remember("jobs", JobSelection(result.jobs.job_ids, path))
    app.console.say(f"Started duplicate detection job {result.job_id}", f"Watch it at: {result.url}",
                    f"Its id is kept in {path.name}; a job that hits the 5000 cap is split into more jobs there.")
    if app.answers.confirm("Wait for the job to finish now?", default=True, flag="wait"):
        return wait(app)
    app.console.say(f"Next: wait for it (menu option 7, or the wait command with --jobs-file {path.name}); a job "
                    "that hits the cap is split there. Then step 2 (Group duplicates).")
    return 0


def wait(app: App) -> int:
    selection: JobSelection = app.answers.get("jobs")
    if selection.jobs_file is not None:
        return _wait_for_jobs_file(app, selection.jobs_file)
    code = 0
    for job_id in selection.job_ids:
        status = detect_step.wait_for_job(
            app.client, job_id, lambda s: app.console.progress(f"Job {s.job_id[:8]}…: {s.label}", final=s.done),
            poll_s=float(app.options.get("poll_s", 2.0)))
        if status.succeeded:
            app.console.say(f"Job {job_id} succeeded.")
        else:
            app.console.say(f"Job {job_id} is {status.label}. {status.message}".strip())
            code = 1
    if code == 0:
        app.console.say("Next: step 2 (Group duplicates).")
    return code


def _wait_for_jobs_file(app: App, path: Path) -> int:
    """Carry the detection in the jobs file to its end: wait, split capped jobs, start their parts."""
    jobs = _load_for(app, path)
    settings = detect_step.DetectSettings(jobs.entity, jobs.view, job_cap=jobs.cap)

    def show(state: DetectionJobs, events: list[str]) -> None:
        app.console.say(*events)
        app.console.progress(f"Detection jobs: {state.count(JobState.DONE)} done, {state.count(JobState.RUNNING)} "
                             f"running, {state.count(JobState.WAITING)} waiting", final=state.finished)

    jobs = detect_step.wait_for_jobs(app.client, jobs, settings, save=lambda state: save_jobs(path, state),
                                     on_progress=show, poll_s=float(app.options.get("poll_s", 2.0)))
    if not jobs.finished:
        app.console.say(f"Not finished yet: run option 7 (or the wait command) again with {path.name}.")
        return 1
    found = sum(p.found or 0 for p in jobs.parts if p.state is JobState.DONE)
    app.console.say(f"{len(jobs.job_ids)} detection job(s) finished; {found} records with duplicates.",
                    "Job ids: " + ", ".join(jobs.job_ids), f"Written to {path}.", "Next: step 2 (Group duplicates).")
    return 0


def _load_for(app: App, path: Path) -> DetectionJobs:
    """The jobs file, refused when its jobs belong to another environment."""
    jobs = load_jobs(path)
    if normalize_uri(jobs.environment) != normalize_uri(app.client.environment_uri):
        raise about("jobs", UsageError(f"{path.name} holds jobs of {jobs.environment}, not of "
                                       f"{app.client.environment_uri}.",
                                       "Use the .env file of that environment, or start a new detection (step 1)."))
    return jobs


def _group_job_ids(app: App, selection: JobSelection, entity: str) -> tuple[str, ...]:
    """The job ids step 2 reads: given, or those of a finished jobs file for this entity."""
    if selection.jobs_file is None:
        return selection.job_ids
    jobs = _load_for(app, selection.jobs_file)
    if jobs.entity != entity:
        raise about("jobs", UsageError(f"{selection.jobs_file.name} holds detection jobs of {jobs.entity}, "
                                       f"not {entity}.", f"Use the entity '{jobs.entity}', or another jobs file."))
    if not jobs.finished:
        raise RunStateError(f"The detection in {selection.jobs_file.name} is not finished: "
                            f"{jobs.count(JobState.RUNNING)} jobs running, {jobs.count(JobState.WAITING)} waiting.",
                            "Run option 7 (or the wait command) with that file, then step 2 again.")
    return jobs.job_ids


def group(app: App) -> int:
    most = group_step.GroupSettings.workers  # $batch requests at once; --workers may only lower it
    entity = app.answers.get("entity")
    run = app.folder(create=True)
    job_ids = _group_job_ids(app, app.answers.get("jobs"), entity)
    settings = group_step.GroupSettings(entity, job_ids, app.answers.get("max_duplicates"),
                                        workers=min(app.options.get("workers") or most, most))
    app.console.say(f"Reading the duplicates of {len(job_ids)} detection job(s) and downloading the records...")
    result = group_step.run(app.client, run, settings, on_progress=lambda done, total: app.console.progress(
        f"Asked Dataverse for the duplicates of {done}/{total} records", final=done == total))
    s = result.summary
    app.console.say(
        f"Pairs read: {s.get('pairs_read')}; groups: {s.get('groups')}; records: {s.get('records')}; "
        f"largest group: {s.get('largest_group')}",
        "Group sizes: " + ", ".join(f"{k} records: {v}" for k, v in sorted(s.get("size_histogram", {}).items())),
        f"({result.requests} requests to Dataverse)",
    )
    _guard_large_groups(app, run, result)
    capped = result.groups.capped_jobs
    if capped:
        app.console.say(f"{len(capped)} of the {len(job_ids)} jobs hit the service's 5000-duplicate cap "
                        f"({', '.join(capped)}): run detection again and let it wait (it splits capped jobs), "
                        "or merge these and run another round to find the rest.")
    app.console.say("Written: " + "; ".join(result.written), "Next: step 3 (Prepare duplicates).")
    return 0


def _guard_large_groups(app: App, run: RunFolder, result: group_step.GroupResult) -> None:
    """Runaway groups: a threshold asked only when some group passes the default; the flagged groups shown."""
    groups = result.groups
    if groups.too_large():
        sizes = sorted((len(g.record_ids) for g in groups.too_large()), reverse=True)
        app.console.say(f"{len(sizes)} groups have more than {groups.max_group_size} records (largest: {sizes[0]}): "
                        "a loose rule may have chained unrelated records.")
        threshold = app.answers.get("max_group_size")
        if threshold != groups.max_group_size:
            group_step.reflag(run, result, threshold)
            groups = result.groups
    for flagged in groups.flagged[:10]:
        app.console.say(f"  flagged: {flagged.describe()}")
    if len(groups.flagged) > 10:
        app.console.say(f"  ... and {len(groups.flagged) - 10} more flagged groups (duplicate_groups.json lists them)")
    if groups.too_large():
        app.console.say(f"Step 3 leaves the {len(groups.too_large())} groups over {groups.max_group_size} records out "
                        "unless you allow them.")


def load_merge_logic() -> ModuleType:
    """prepare_duplicates.py, read afresh: a user edits its merge logic between runs of step 3 while the
    menu stays open. A syntax error there is a one-line message, not a traceback."""
    try:
        import prepare_duplicates

        return importlib.reload(prepare_duplicates)
    except SyntaxError as exc:
        raise UsageError(f"prepare_duplicates.py has a syntax error at line {exc.lineno}: {exc.msg}.",
                         "Fix it and run step 3 again.") from None


def prepare(app: App) -> int:
    prepare_step = load_merge_logic()
    entity = app.answers.get("entity")
    run = app.folder()
    target = app.answers.get("target")
    grouped = run.read_duplicate_groups()
    large = grouped.too_large()
    allow = bool(large) and app.answers.confirm(
        f"{len(large)} groups have more than {grouped.max_group_size} records (largest: "
        f"{max(len(g.record_ids) for g in large)}), perhaps chained by a loose rule. Plan them anyway?",
        default=False, flag="allow_large_groups")
    settings = step.PrepareSettings(entity=entity, target_strategy=target, replan=bool(app.options.get("replan")),
                                    allow_large_groups=allow)
    try:
        result = prepare_step.run(app.client, run, settings)
    except StepFourStartedError as exc:
        if app.options.get("replan") is not None or not app.answers.confirm(
                f"{exc.message} Plan only what is left, from the records as they stand now?", default=False):
            raise
        result = prepare_step.run(app.client, run, replace(settings, replan=True))
    for line in step.summary_lines(result):
        app.console.say(line)
    app.console.say("Nothing was written to Dataverse. Review the plan (review.html, merges.csv: delete the rows of "
                    "merges you do not want), edit the merge logic in prepare_duplicates.py and rerun step 3 if "
                    "needed; then step 4 (Merge duplicates).")
    return 0


def merge(app: App) -> int:
    import merge_duplicates as merge_step

    entity = app.answers.get("entity")
    run = app.folder()
    if not run.plan_path.exists():   # say so before asking anything else
        raise RunStateError(f"{run.display(run.plan_path)} does not exist.", "Run step 3 (Prepare duplicates) first.")
    settings = merge_step.MergeSettings(
        entity=entity,
        parenting_checks=app.answers.get("parenting_checks"),
        max_merges=app.answers.get("max_merges"),
        marketing_workaround=app.answers.confirm(
            "Use the marketing-list workaround (move list memberships to the target before merging)?",
            default=False, flag="marketing_workaround"),
        check_modified=bool(app.options.get("check_modified", False)),
        workers=app.options.get("workers"),
        batch_size=app.options.get("batch_size"),
        note=app.answers.confirm("Leave a note on each merged target (who was merged into it, when, what was "
                                 "written)?", default=False, flag="note"),
    )
    plan = merge_step.load(app.client, run, settings)
    app.console.say(*plan.summary_lines())
    if plan.predicted_failures and not app.answers.confirm(
            f"Skip the {len(plan.predicted_failures)} merges predicted to fail?", default=True, flag="skip"):
        settings = replace(settings, skip_predicted_failures=False)
        plan = merge_step.load(app.client, run, settings)
    sends = bool(plan.to_run or plan.unknown_outcomes)
    if not sends and not plan.skips:
        app.console.say("Nothing left to merge.")
        return 0
    if sends and not app.answers.confirm(
            f"Merge {len(plan.to_run)} records in Dataverse now? This cannot be undone.", default=False, flag="yes"):
        app.console.say("Nothing was merged.")
        return 0
    # (with nothing to send, the run only records the skips in the journal and merge_actions_made.json)
    result = merge_step.run(app.client, run, plan, settings,
                            on_progress=lambda p: app.console.progress(str(p), final=p.done >= p.total))
    app.console.say(*result.summary_lines())
    return 1 if result.failed or result.stopped else 0


def undo(app: App) -> int:
    import undo_merges as undo_step

    entity = app.answers.get("entity")
    run = app.folder()
    if not run.journal_path.exists():   # say so before asking anything else
        raise RunStateError(f"{run.display(run.journal_path)} does not exist: nothing was merged in this folder.",
                            "Step 4 (Merge duplicates) writes it.")
    settings = undo_step.UndoSettings(entity=entity, subordinates=tuple(app.options.get("subordinates") or ()),
                                      max_undo=app.answers.get("max_undo"), workers=app.options.get("workers"))
    plan = undo_step.load(app.client, run, settings)
    app.console.say(*plan.summary_lines())
    if not plan.items:
        app.console.say("Nothing to undo.")
        return 0
    if not app.answers.confirm(f"Undo {len(plan.items)} merges in Dataverse now?", default=False, flag="yes"):
        app.console.say("Nothing was undone.")
        return 0
    result = undo_step.run(app.client, run, plan, settings,
                           on_progress=lambda p: app.console.progress(str(p), final=p.done >= p.total),
                           on_wait=lambda text: app.console.progress(text))
    app.console.say(*result.summary_lines())
    return 1 if result.failed else 0


def status(app: App) -> int:
    from runfolder import status as status_step

    run = app.folder()
    app.console.say(*status_step.describe(run))
    return 0
