"""Step 4: send the plan's Merge actions that prepare/merges.csv still selects. Writes update/journal.jsonl
and update/merge_actions_made.json.

Merges cannot be undone in Dataverse, so this step sends nothing that step 3's plan (prepare/plan.jsonl) did
not compute, into nothing but the environment it was prepared against, and is built to be interrupted and
rerun: every Merge is journaled before it is sent and after it answers; a rerun skips what is done and asks
Dataverse about any merge whose answer was lost before doing anything else with that subordinate.
`load` (reads only) feeds the confirmation screen; `run` does the work (merging/runner.py).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from dataverse import DataverseClient
from errors import EnvironmentMismatchError, OutputClosedError, RunStateError, TokenRefusedError, about
from merging.outcomes import MergeResult
from merging.pool import Progress, ProgressCallback
from merging.runner import MergeRun, TokenStop
from merging.selection import MergePlan, MergeSettings, select
from report.outcome_page import write_report_page
from runfolder.folder import RunFolder
from runfolder.journal import Journal, read_journal, replay, write_actions
from runfolder.lock import RunLock
from runfolder.merges_csv import read_selection
from runfolder.plan_file import Plan, read_plan

__all__ = ["MergePlan", "MergeResult", "MergeSettings", "Progress", "load", "run"]

log = logging.getLogger(__name__)


def load(client: DataverseClient, run: RunFolder, settings: MergeSettings) -> MergePlan:
    """The plan, what merges.csv selects of it, and what the journal says is done: what this run will do.
    Refuses a plan for another table or another environment, and a merges.csv that differs from the plan."""
    plan = read_plan(run.plan_path)
    check_plan_is_for(plan, run, settings.entity, client)
    selection = read_selection(run.merges_csv, plan, run.root.parent)
    history = replay(read_journal(run.journal_path))
    return select(plan, selection, history, client.environment(), settings)


def check_plan_is_for(plan: Plan, run: RunFolder, entity: str, client: DataverseClient) -> None:
    """The folder's plan must be for this table and this environment (a wrong .env file is the usual cause)."""
    header = plan.header
    if header.entity != entity:
        raise about("entity", RunStateError(
            f"{run.display(run.plan_path)} plans {header.entity} merges, but this run was asked to merge {entity}.",
            f"Use the entity '{header.entity}', or another run folder.", str(run.plan_path)))
    here = client.environment()
    if not header.environment.same_as(here):
        raise EnvironmentMismatchError(
            f"The run folder {run.root.name} was prepared against {header.environment.describe()}, but you are "
            f"signed in to {here.describe()}.",
            "Use the .env file of that environment (--env-file), or run steps 2 and 3 again in a new folder.")


def run(client: DataverseClient, run: RunFolder, plan: MergePlan, settings: MergeSettings, *,
        on_progress: ProgressCallback | None = None, seed: int = 0) -> MergeResult:
    """Execute the plan. merge_actions_made.json is rewritten at the end, on Ctrl-C and on any error. A refused
    sign-in stops the run: the result says so (`stopped`), and finished work is kept."""
    with RunLock(run.lock_path, "step 4 (Merge duplicates)"):
        journal = Journal(run.journal_path)
        step: MergeRun | None = None
        ending = "error"
        try:
            step = MergeRun(client, run, plan, settings, journal, seed)
            journal.append("run_start", entity=settings.entity, plan_id=plan.plan.header.plan_id,
                           environment=plan.environment.organization_id, planned=len(plan.to_run),
                           settings=asdict(settings))
            step.execute(step.prepare(), on_progress)
            ending = "finished"
        except TokenStop as stop:
            ending = "token_refused"
            if step is not None:
                step.result.stopped = f"{stop.error.message} {stop.error.hint}"
        except TokenRefusedError:
            ending = "token_refused"
            raise
        except (KeyboardInterrupt, OutputClosedError):
            ending = "interrupted"
            raise
        finally:
            _wrap_up(run, journal, step, settings, ending)
        assert step is not None
        return step.result


def _wrap_up(run: RunFolder, journal: Journal, step: MergeRun | None, settings: MergeSettings, ending: str) -> None:
    """Close the journal and rebuild merge_actions_made.json from it (also after Ctrl-C and errors)."""
    try:
        try:
            if step is not None:
                step.finish()
                journal.append("run_end", ending=ending, counts=step.result.counts())
        finally:
            journal.close()
        actions = write_actions(run.merge_actions_path, read_journal(run.journal_path), entity=settings.entity)
        write_report_page(run, actions)
    except (OSError, RunStateError) as exc:
        if ending == "finished":
            raise
        log.error("could not write %s after the run stopped: %s", run.merge_actions_path, exc)
    log.info("step 4 %s: %s", ending, step.result.counts() if step else {})
