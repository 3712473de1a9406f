"""The jobs file: which detection jobs cover a view, over which key ranges, and how far each has got.

`detection_jobs_{entity}.json` in the working folder, written by step 1 after every change (atomically)
and read by `wait` (to carry on: start waiting parts, split capped ones) and by step 2 (`--jobs-file`).
`job_ids` lists the jobs that together cover the view exactly once; a job that came back capped is kept
with state `split` and its parts follow it. The view's QueryExpression is kept so that later parts run
the very query the first job ran, even if someone edits the view meanwhile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from dataverse.odata import GUID
from errors import RunStateError
from planning.partitions import KeyRange
from runfolder.folder import atomic_write_text

FORMAT = "detection_jobs/1"
_MADE_BY = "step 1 (Create duplicate detection job)"


class JobState(StrEnum):
    """Where one part of the view stands."""

    WAITING = "waiting"    # not started yet (only a few jobs run at once)
    RUNNING = "running"    # started; Dataverse has not finished it
    DONE = "done"          # succeeded under the cap: its results are complete
    SPLIT = "split"        # succeeded at the cap: replaced by the parts after it
    FAILED = "failed"      # failed or was canceled in Dataverse


@dataclass
class PartJob:
    """One key range of the view and the job that covers it."""

    part: KeyRange
    state: JobState = JobState.WAITING
    job_id: str = ""
    found: int | None = None          # records with duplicates the finished job reported
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id or None, "lower": self.part.lower, "upper": self.part.upper,
                "state": self.state.value, "found": self.found, "message": self.message}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartJob:
        return cls(KeyRange(_guid_or_none(data.get("lower")), _guid_or_none(data.get("upper"))),
                   JobState(data["state"]), _guid_or_none(data.get("job_id")) or "",
                   None if data.get("found") is None else int(data["found"]), str(data.get("message") or ""))


@dataclass
class DetectionJobs:
    """A view's detection, cut into parts (see the module docstring)."""

    entity: str
    view: str
    environment: str
    query: dict[str, Any]
    primary_id: str
    cap: int
    created: str = ""
    parts: list[PartJob] = field(default_factory=list)

    @property
    def job_ids(self) -> tuple[str, ...]:
        """The started jobs that cover the view (capped ones replaced by their parts)."""
        return tuple(p.job_id for p in self.parts if p.job_id and p.state is not JobState.SPLIT)

    @property
    def finished(self) -> bool:
        return all(p.state in (JobState.DONE, JobState.SPLIT) for p in self.parts)

    def count(self, *states: JobState) -> int:
        return sum(1 for p in self.parts if p.state in states)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "entity": self.entity, "view": self.view, "environment": self.environment,
                "created": self.created, "cap": self.cap, "primary_id": self.primary_id,
                "job_ids": list(self.job_ids), "parts": [p.to_json() for p in self.parts], "query": self.query}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DetectionJobs:
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        if not isinstance(data["query"], dict) or not isinstance(data["parts"], list):
            raise TypeError("query must be an object and parts a list")
        return cls(str(data["entity"]), str(data["view"]), str(data["environment"]), data["query"],
                   str(data["primary_id"]), int(data["cap"]), str(data.get("created") or ""),
                   [PartJob.from_json(p) for p in data["parts"]])


def jobs_file_path(work_dir: Path, entity: str) -> Path:
    """Where step 1 keeps the jobs of `entity`'s detection (one file per table)."""
    return work_dir / f"detection_jobs_{entity}.json"


def save_jobs(path: Path, jobs: DetectionJobs) -> None:
    atomic_write_text(path, json.dumps(jobs.to_json(), indent=2, ensure_ascii=False) + "\n")


def load_jobs(path: Path) -> DetectionJobs:
    """The jobs file at `path`; RunStateError naming the file when it is missing or damaged."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise RunStateError(f"There is no jobs file {path.name} in {path.parent}.",
                            f"Run {_MADE_BY} first, or give the job ids instead.", str(path)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunStateError(f"{path.name} is not valid JSON.", f"Run {_MADE_BY} again.", str(path)) from exc
    except OSError as exc:
        raise RunStateError(f"Cannot read {path.name}: {exc.strerror}.", "", str(path)) from exc
    try:
        return DetectionJobs.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunStateError(f"{path.name} is not a jobs file step 1 wrote ({str(exc)[:100]}).",
                            f"Run {_MADE_BY} again, or give the job ids instead.", str(path)) from exc


def _guid_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not GUID.fullmatch(value):
        raise ValueError(f"not a GUID: {str(value)[:60]!r}")
    return value
