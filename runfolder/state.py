"""Typed shapes of a run's state: what one step writes and the next reads (DESIGN.md sections 1 and 5), and
the outcomes code decides on (enums: a message is rendered from them for people, never parsed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dataverse.environment import Environment
from dataverse.odata import GUID


@dataclass(frozen=True)
class Group:
    """Records joined by duplicate pairs. `group_id` is stable: the smallest member id."""

    group_id: str
    record_ids: tuple[str, ...]


class GroupFlag(StrEnum):
    """Why step 2 flags a group (planning/group_guard.py)."""

    LARGE = "large"
    SEVERAL_RULES = "several_rules"


@dataclass(frozen=True)
class FlaggedGroup:
    """A group step 2 flags, with the pairs that joined it and the rules each pair meets."""

    group_id: str
    size: int
    flags: tuple[GroupFlag, ...]
    pairs: tuple[tuple[str, str, tuple[str, ...]], ...]   # (record, record, names of the rules the pair meets)
    pairs_total: int

    def to_json(self) -> dict[str, Any]:
        return {"group_id": self.group_id, "size": self.size, "flags": [str(f) for f in self.flags],
                "pairs_total": self.pairs_total, "pairs": [[a, b, list(r)] for a, b, r in self.pairs]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlaggedGroup:
        return cls(str(data["group_id"]), int(data["size"]), tuple(GroupFlag(f) for f in data.get("flags") or ()),
                   tuple((str(a), str(b), tuple(str(r) for r in rules)) for a, b, rules in data.get("pairs") or ()),
                   int(data.get("pairs_total") or 0))

    def describe(self) -> str:
        why = " and ".join({"large": f"{self.size} records", "several_rules": "joined through different rules"}[f]
                           for f in self.flags)
        rules = sorted({r for _, _, names in self.pairs for r in names})
        return f"group {self.group_id}: {why}" + (f" ({', '.join(rules)})" if rules else "")


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
    environment: Environment | None = None   # where the records were read (None: a file from before it was kept)
    job_ids: tuple[str, ...] = ()
    capped_jobs: tuple[str, ...] = ()   # the jobs that hit the cap (their results may be incomplete)
    max_group_size: int = 10            # larger groups are flagged, and step 3 leaves them out unless allowed
    flagged: tuple[FlaggedGroup, ...] = ()

    def too_large(self) -> list[Group]:
        """Groups with more records than `max_group_size`."""
        return [g for g in self.groups if len(g.record_ids) > self.max_group_size]

    @property
    def all_job_ids(self) -> tuple[str, ...]:
        return self.job_ids or (self.job_id,)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "job_ids": list(self.all_job_ids), "entity": self.entity, "created": self.created,
            "pairs_read": self.pairs_read, "capped": self.capped, "capped_jobs": list(self.capped_jobs),
            "environment": self.environment.to_json() if self.environment else None,
            "max_group_size": self.max_group_size, "flagged": [f.to_json() for f in self.flagged],
            "groups": [{"group_id": g.group_id, "records": list(g.record_ids)} for g in self.groups],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DuplicateGroups:
        """Raises KeyError/TypeError/ValueError on a malformed document (the caller names the file)."""
        groups = [Group(guid(g["group_id"]), tuple(guid(r) for r in _list(g["records"]))) for g in data["groups"]]
        return cls(
            job_id=str(data["job_id"]), entity=str(data["entity"]), groups=groups,
            pairs_read=int(data.get("pairs_read", 0)), capped=bool(data.get("capped", False)),
            created=str(data.get("created", "")), environment=Environment.from_json(data.get("environment")),
            job_ids=tuple(str(j) for j in data.get("job_ids") or ()),
            capped_jobs=tuple(str(j) for j in data.get("capped_jobs") or ()),
            max_group_size=int(data.get("max_group_size") or 10),
            flagged=tuple(FlaggedGroup.from_json(f) for f in data.get("flagged") or ()),
        )


def guid(value: Any) -> str:
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


@dataclass(frozen=True)
class Finding:
    """A pre-flight verdict on one planned merge: a code (planning.preflight), when it bites, and the
    service's own wording of the refusal it predicts."""

    code: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class PlannedMerge:
    """One merge of the plan (prepare/plan.jsonl; merges.csv shows it)."""

    group_id: str
    order: int
    target_id: str
    subordinate_id: str
    update_content: dict[str, Any]
    changed_fields: tuple[str, ...] = ()
    preflight: tuple[Finding, ...] = ()
    target_modifiedon: str | None = None
    subordinate_modifiedon: str | None = None
    target_name: str = ""
    subordinate_name: str = ""
    related: tuple[tuple[str, int], ...] = ()   # rows the merge will move, per table (listmember: memberships)

    @property
    def related_rows(self) -> int:
        return sum(n for _, n in self.related)

    @property
    def predicted_to_fail(self) -> bool:
        """Dataverse will refuse it whatever step 4's settings (step 3 planned later merges without it)."""
        return any(f.severity is Severity.FAIL for f in self.preflight)


class MergeStatus(StrEnum):
    """A merge's outcome as the journal records it."""

    MERGED = "merged"
    ALREADY_MERGED = "already_merged"   # found merged into its target (an earlier answer was lost)
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def done(self) -> bool:
        return self in (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED)


class SkipReason(StrEnum):
    """Why step 4 did not send a planned merge (the journal's `reason_code`)."""

    PREDICTED_FAILURE = "predicted_failure"            # pre-flight says Dataverse will refuse it
    EARLIER_LEFT_OUT = "earlier_left_out"              # an earlier merge of its target was deleted from merges.csv
    EARLIER_NOT_DONE = "earlier_not_done"              # an earlier merge of its target failed or was skipped
    SUBORDINATE_GONE = "subordinate_gone"
    SUBORDINATE_MERGED_ELSEWHERE = "subordinate_merged_elsewhere"
    SUBORDINATE_INACTIVE = "subordinate_inactive"
    TARGET_GONE = "target_gone"
    TARGET_INACTIVE = "target_inactive"
    SUBORDINATE_CHANGED = "subordinate_changed"        # modifiedon differs from step 3's (--check-modified)
    TARGET_CHANGED = "target_changed"
    NOT_SELECTED = "not_selected"                      # sent before with no answer; now out of merges.csv or the max
    TOKEN_REFUSED = "token_refused"                    # Dataverse refused the sign-in: the run stopped

    @property
    def needs_prepare(self) -> bool:
        """A skip that a fresh step 3 resolves (the records changed since it planned)."""
        return self in (SkipReason.SUBORDINATE_CHANGED, SkipReason.TARGET_CHANGED)


@dataclass
class MergeOutcome:
    """One finished attempt, as the journal records it."""

    subordinate_id: str
    target_id: str
    group_id: str
    status: MergeStatus
    reason_code: str = ""           # a SkipReason, or a failure class for failures
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
    environment: str = ""           # the organization id the merge was sent to
