"""Typed shapes of a run's state: what one step writes and the next reads (DESIGN.md section 1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dataverse.odata import GUID

MERGES_CSV_COLUMNS = [
    "group_id", "order", "target_id", "subordinate_id", "preflight", "changed_fields", "update_content",
    "target_modifiedon", "subordinate_modifiedon",
]


@dataclass(frozen=True)
class Group:
    """Records joined by duplicate pairs. `group_id` is stable: the smallest member id."""

    group_id: str
    record_ids: tuple[str, ...]


@dataclass
class DuplicateGroups:
    """group/duplicate_groups.json. `job_id` is the first job; `job_ids` all of them (files from before
    several jobs per view hold only `job_id`)."""

    job_id: str
    entity: str
    groups: list[Group]
    pairs_read: int = 0
    capped: bool = False          # a job hit the service's 5000-duplicate cap
    created: str = ""
    job_ids: tuple[str, ...] = ()
    capped_jobs: tuple[str, ...] = ()   # the jobs that hit the cap (their results may be incomplete)

    @property
    def all_job_ids(self) -> tuple[str, ...]:
        return self.job_ids or (self.job_id,)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "job_ids": list(self.all_job_ids), "entity": self.entity, "created": self.created,
            "pairs_read": self.pairs_read, "capped": self.capped, "capped_jobs": list(self.capped_jobs),
            "groups": [{"group_id": g.group_id, "records": list(g.record_ids)} for g in self.groups],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DuplicateGroups:
        """Raises KeyError/TypeError/ValueError on a malformed document (the caller names the file)."""
        groups = [Group(_guid(g["group_id"]), tuple(_guid(r) for r in _list(g["records"]))) for g in data["groups"]]
        return cls(
            job_id=str(data["job_id"]), entity=str(data["entity"]), groups=groups,
            pairs_read=int(data.get("pairs_read", 0)), capped=bool(data.get("capped", False)),
            created=str(data.get("created", "")), job_ids=tuple(str(j) for j in data.get("job_ids") or ()),
            capped_jobs=tuple(str(j) for j in data.get("capped_jobs") or ()),
        )


def _guid(value: Any) -> str:
    """A record id from a run file: a GUID, or the file is damaged (a path or anything else is refused)."""
    if not isinstance(value, str) or not GUID.fullmatch(value.strip().lower()):
        raise ValueError(f"a record id that is not a GUID: {str(value)[:60]!r}")
    return value.strip().lower()


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("records must be a list of ids")
    return value


class Severity(StrEnum):
    """When a pre-flight finding bites: always, never (a note), or only under one of step 4's settings."""

    FAIL = "fail"
    FAIL_IF_PARENTING = "fail_if_parenting"
    FAIL_IF_MARKETING_PLUGIN = "fail_if_marketing_plugin"
    WARN = "warn"


class MergeStatus(StrEnum):
    """A merge's outcome as the journal records it."""

    MERGED = "merged"
    ALREADY_MERGED = "already_merged"   # found merged into its target (an earlier answer was lost)
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def done(self) -> bool:
        return self in (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED)


@dataclass(frozen=True)
class Finding:
    """A pre-flight verdict on one planned merge: a code (planning.preflight.Check), when it bites, and
    the service's own wording of the refusal it predicts."""

    code: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class PlannedMerge:
    """One row of prepare/merges.csv."""

    group_id: str
    order: int
    target_id: str
    subordinate_id: str
    update_content: dict[str, Any]
    changed_fields: tuple[str, ...] = ()
    preflight: tuple[Finding, ...] = ()
    target_modifiedon: str | None = None
    subordinate_modifiedon: str | None = None


@dataclass
class MergeOutcome:
    """One finished attempt, as the journal records it."""

    subordinate_id: str
    target_id: str
    group_id: str
    status: str                     # merged | failed | skipped | already_merged
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    failure_class: str = ""
    hint: str = ""
    started: str = ""
    finished: str = ""
    duration_ms: float = 0.0
    update_content: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
