"""prepare/plan.jsonl: step 3's authoritative plan, owned by the tool (DESIGN.md section 5).

merges.csv is a view of it for people and only selects; step 4 and undo take every id and every value from
here. One JSON object per line: first the header (what, where and when it was planned, and a digest), then
one line per merge in plan order. The digest (SHA-256 of the merge lines as written) makes an edit of this
file by hand show: such a plan is refused, never half-trusted.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dataverse.environment import Environment
from errors import RunStateError
from runfolder.files import atomic_write_bytes, display
from runfolder.state import Finding, PlannedMerge, Severity, guid

FORMAT = 1
_MADE_BY = "step 3 (Prepare duplicates)"


@dataclass(frozen=True)
class PlanHeader:
    """What the plan is for: its table and environment, when and how it was made."""

    entity: str
    environment: Environment
    target_strategy: str
    plan_id: str = ""
    prepared_at: str = ""
    merges: int = 0
    digest: str = ""
    replan_of: str = ""            # the plan this one replaced after step 4 had started (step 3 --replan)
    excluded: tuple[str, ...] = ()  # records kept out of their groups: their rows were deleted from merges.csv

    @classmethod
    def new(cls, entity: str, environment: Environment, target_strategy: str, replan_of: str = "",
            excluded: Iterable[str] = ()) -> PlanHeader:
        return cls(entity, environment, target_strategy, plan_id=str(uuid.uuid4()),
                   prepared_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), replan_of=replan_of,
                   excluded=tuple(sorted(excluded)))


@dataclass(frozen=True)
class Plan:
    header: PlanHeader
    merges: list[PlannedMerge]

    def by_subordinate(self) -> dict[str, PlannedMerge]:
        return {m.subordinate_id: m for m in self.merges}


def merge_to_json(m: PlannedMerge) -> dict[str, Any]:
    return {
        "kind": "merge", "group_id": m.group_id, "order": m.order, "target_id": m.target_id,
        "subordinate_id": m.subordinate_id, "target_name": m.target_name, "subordinate_name": m.subordinate_name,
        "update_content": m.update_content, "changed_fields": list(m.changed_fields),
        "preflight": [{"code": f.code, "severity": str(f.severity), "message": f.message} for f in m.preflight],
        "target_modifiedon": m.target_modifiedon, "subordinate_modifiedon": m.subordinate_modifiedon,
        "related": dict(m.related),
    }


def merge_from_json(d: dict[str, Any]) -> PlannedMerge:
    """Raises KeyError/TypeError/ValueError on a malformed line (the caller names the file and line)."""
    if d.get("kind") != "merge" or not isinstance(d.get("update_content"), dict):
        raise ValueError("not a planned merge")
    return PlannedMerge(
        group_id=guid(d["group_id"]), order=int(d["order"]), target_id=guid(d["target_id"]),
        subordinate_id=guid(d["subordinate_id"]), update_content=d["update_content"],
        changed_fields=tuple(str(c) for c in d.get("changed_fields") or ()),
        preflight=tuple(Finding(str(f["code"]), Severity(f["severity"]), str(f["message"]))
                        for f in d.get("preflight") or ()),
        target_modifiedon=d.get("target_modifiedon"), subordinate_modifiedon=d.get("subordinate_modifiedon"),
        target_name=str(d.get("target_name") or ""), subordinate_name=str(d.get("subordinate_name") or ""),
        related=tuple((str(k), int(v)) for k, v in (d.get("related") or {}).items()),
    )


def json_bytes(data: Any) -> bytes:
    """Compact JSON in UTF-8 (orjson: step 3 writes one line per merge; the standard library for what orjson
    refuses, such as an integer past 64 bits)."""
    try:
        return orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _digest(lines: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line)
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def write_plan(path: Path, header: PlanHeader, merges: list[PlannedMerge]) -> PlanHeader:
    """Write the plan atomically (fsync'd); returns the header as written (count and digest filled in)."""
    lines = [json_bytes(merge_to_json(m)) for m in merges]
    header = replace(header, merges=len(lines), digest=_digest(lines))
    head = {"kind": "plan", "format": FORMAT, "plan_id": header.plan_id, "entity": header.entity,
            "environment": header.environment.to_json(), "target_strategy": header.target_strategy,
            "prepared_at": header.prepared_at, "replan_of": header.replan_of, "excluded": list(header.excluded),
            "merges": header.merges, "digest": header.digest}
    atomic_write_bytes(path, b"\n".join([json_bytes(head), *lines]) + b"\n")
    return header


def read_plan(path: Path) -> Plan:
    """The plan, checked whole (format, count, digest); RunStateError naming the file and the fix."""
    shown = display(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RunStateError(f"{shown} does not exist.", f"Run {_MADE_BY} first.", str(path)) from None
    except OSError as exc:
        raise RunStateError(f"Cannot read {shown}: {exc.strerror}.", "", str(path)) from exc
    lines = [line.rstrip(b"\r") for line in raw.split(b"\n") if line.strip()]
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    try:
        head = json.loads(lines[0]) if lines else {}
        if head.get("kind") != "plan" or head.get("format") != FORMAT:
            raise ValueError("no plan header")
        environment = Environment.from_json(head.get("environment"))
        if environment is None:
            raise ValueError("no environment")
        header = PlanHeader(str(head["entity"]), environment, str(head.get("target_strategy") or ""),
                            str(head["plan_id"]), str(head.get("prepared_at") or ""), int(head["merges"]),
                            str(head["digest"]), str(head.get("replan_of") or ""),
                            tuple(guid(i) for i in head.get("excluded") or ()))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"its first line is not a plan header ({_short(exc)})") from None
    body = lines[1:]
    if len(body) != header.merges or _digest(body) != header.digest:
        raise _damaged(path, "it was changed after step 3 wrote it")
    return Plan(header, in_plan_order(_merges(path, body)))


def in_plan_order(merges: Iterable[PlannedMerge]) -> list[PlannedMerge]:
    """Groups in the order they first appear, each group's merges by `order` (a chain runs in that order)."""
    listed = list(merges)
    rank: dict[str, int] = {}
    for m in listed:
        rank.setdefault(m.group_id, len(rank))
    return sorted(listed, key=lambda m: (rank[m.group_id], m.order))


def _merges(path: Path, body: list[bytes]) -> Iterator[PlannedMerge]:
    for number, line in enumerate(body, start=2):
        try:
            yield merge_from_json(json.loads(line))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise _damaged(path, f"line {number} is not a planned merge ({_short(exc)})") from None


def _damaged(path: Path, what: str) -> RunStateError:
    return RunStateError(f"{display(path)} cannot be used: {what}.",
                         f"Do not edit this file (merges.csv is the one to edit); rerun {_MADE_BY} to write it "
                         "again.", str(path))


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
