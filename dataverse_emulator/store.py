"""The emulator's in-memory database: tables of records keyed by id, an undo log for atomic operations,
counters the tests read, and JSON save/load for `--state-file`.

Records are plain dicts keyed by attribute logical name. A lookup value is a `Ref(entity, id)`; ids are
lower-case GUID strings; datetimes are ISO-8601 strings in UTC ending in `Z` (so they compare as text).
Every read or write happens under `store.lock` (a re-entrant lock); operations that must be atomic run
inside `with store.transaction():`, which rolls every change back if the block raises.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from .schema import SCHEMA, Entity
from .states import default_pair


class Ref(NamedTuple):
    """A lookup value: the referenced table and record id."""

    entity: str
    id: str


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class RequestLogEntry:
    method: str
    path: str
    status: int
    duration_ms: float
    user: str = ""
    web_server: int = 0  # which of the environment's web servers answered (webservers.py)


@dataclass
class Counters:
    """What tests assert on: merges per subordinate, and every request served."""

    merge_success: Counter[str] = field(default_factory=Counter)   # subordinate id -> successful merges
    merge_attempts: Counter[str] = field(default_factory=Counter)  # subordinate id -> Merge requests seen
    requests: list[RequestLogEntry] = field(default_factory=list)
    throttled: int = 0


class NotFound(KeyError):
    """No such record."""


class Store:
    """Tables of records. Thread-safe through one re-entrant lock."""

    def __init__(self, schema: dict[str, Entity] | None = None) -> None:
        self.schema = schema or SCHEMA
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema}
        self.lock = threading.RLock()
        self.counters = Counters()
        self.settings: dict[str, Any] = {}  # org-level switches (e.g. marketing plugin installed)
        self._undo: list[tuple[str, str, dict[str, Any] | None]] | None = None
        self._on_commit: list[Callable[[], None]] = []
        self._version = 1000
        self.table_versions: Counter[str] = Counter()  # bumped on every write to a table
        self.derived: dict[Any, Any] = {}              # caches computed from tables (never saved)
        self._refs: dict[tuple[str, str], dict[Ref, set[str]]] = {}  # (table, lookup) -> Ref -> ids

    # -- reads -----------------------------------------------------------------------------------
    def get(self, entity: str, record_id: str) -> dict[str, Any] | None:
        """The live record (do not mutate it outside the store), or None."""
        return self.tables[entity].get(record_id.lower())

    def require(self, entity: str, record_id: str) -> dict[str, Any]:
        rec = self.get(entity, record_id)
        if rec is None:
            raise NotFound(f"{entity}({record_id})")
        return rec

    def rows(self, entity: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.tables[entity].values())

    def find(self, entity: str, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.tables[entity].values() if predicate(r)]

    def referencing(self, entity: str, attr: str, target: str, target_id: str) -> list[dict[str, Any]]:
        """Rows of `entity` whose lookup `attr` points at `target(target_id)`."""
        with self.lock:
            return [self.tables[entity][i] for i in self.referencing_ids(entity, attr, Ref(target, target_id))]

    def referencing_ids(self, entity: str, attr: str, ref: Ref) -> list[str]:
        """Ids of the rows of `entity` whose lookup `attr` is `ref`, from an index kept up to date by every
        write (built on first use), so Merge does not scan whole tables."""
        with self.lock:
            index = self._refs.get((entity, attr))
            if index is None:
                index = self._refs[(entity, attr)] = {}
                pk = self.schema[entity].primary_id
                for row in self.tables[entity].values():
                    value = row.get(attr)
                    if isinstance(value, Ref):
                        index.setdefault(value, set()).add(row[pk])
            return sorted(index.get(ref, ()))

    def _reindex(self, entity: str, rid: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        for (table, attr), index in self._refs.items():
            if table != entity:
                continue
            old = before.get(attr) if before else None
            new = after.get(attr) if after else None
            if old == new:
                continue
            if isinstance(old, Ref) and old in index:
                index[old].discard(rid)
                if not index[old]:
                    del index[old]
            if isinstance(new, Ref):
                index.setdefault(new, set()).add(rid)

    # -- writes ----------------------------------------------------------------------------------
    def insert(self, entity: str, values: dict[str, Any], record_id: str | None = None) -> str:
        """Add a record with the system columns filled in; returns its id."""
        meta = self.schema[entity]
        rid = (record_id or values.get(meta.primary_id) or new_id()).lower()
        with self.lock:
            if rid in self.tables[entity]:
                raise ValueError(f"{entity}({rid}) already exists")
            stamp = values.get("createdon") or now_iso()
            record: dict[str, Any] = {meta.primary_id: rid, "createdon": stamp, "modifiedon": stamp}
            if "statecode" in meta.attrs:
                record["statecode"], record["statuscode"] = default_pair(entity)
            if "merged" in meta.attrs:
                record["merged"] = False
            record.update(values)
            record[meta.primary_id] = rid
            record["versionnumber"] = self._next_version()
            self._remember(entity, rid, None)
            self.tables[entity][rid] = record
            self._reindex(entity, rid, None, record)
            return rid

    def update(self, entity: str, record_id: str, values: dict[str, Any], *, touch: bool = True) -> dict[str, Any]:
        with self.lock:
            rec = self.require(entity, record_id)
            rid, before = rec[self.schema[entity].primary_id], dict(rec)
            self._remember(entity, rid, before)
            rec.update(values)
            self._reindex(entity, rid, before, rec)
            if touch:
                rec["modifiedon"] = values.get("modifiedon") or now_iso()
                rec["versionnumber"] = self._next_version()
            return rec

    def delete(self, entity: str, record_id: str) -> None:
        with self.lock:
            rec = self.require(entity, record_id)
            rid = rec[self.schema[entity].primary_id]
            self._remember(entity, rid, dict(rec))
            del self.tables[entity][rid]
            self._reindex(entity, rid, rec, None)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside succeed together or are undone together. Nested use joins the outer one."""
        with self.lock:
            if self._undo is not None:
                yield
                return
            self._undo = []
            committed: list[Callable[[], None]] = []
            try:
                yield
                committed = self._on_commit
            except BaseException:
                for entity, rid, before in reversed(self._undo):
                    self.table_versions[entity] += 1
                    current = self.tables[entity].get(rid)
                    if before is None:
                        self.tables[entity].pop(rid, None)
                    else:
                        self.tables[entity][rid] = before
                    self._reindex(entity, rid, current, before)
                raise
            finally:
                self._undo = None
                self._on_commit = []
            for action in committed:
                action()

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the outermost transaction commits (at once outside one); dropped on rollback."""
        with self.lock:
            if self._undo is None:
                action()
            else:
                self._on_commit.append(action)

    def _remember(self, entity: str, rid: str, before: dict[str, Any] | None) -> None:
        self.table_versions[entity] += 1
        if self._undo is not None:
            self._undo.append((entity, rid, before))

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    # -- persistence -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        with self.lock:
            tables = {
                name: [{k: _encode(v) for k, v in rec.items()} for rec in recs.values()]
                for name, recs in self.tables.items()
            }
            return {"version": 1, "settings": self.settings, "tables": tables, "next_version": self._version}

    def load_json(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.settings = dict(data.get("settings", {}))
            self._refs.clear()
            self._version = int(data.get("next_version", self._version))
            for name, recs in data.get("tables", {}).items():
                if name not in self.schema:
                    continue
                self.table_versions[name] += 1
                meta = self.schema[name]
                self.tables[name] = {
                    rec[meta.primary_id]: {k: _decode(meta, k, v) for k, v in rec.items()} for rec in recs
                }

    def save(self, path: Path) -> None:
        """Write the state atomically (temp file + rename)."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        self.load_json(json.loads(path.read_text(encoding="utf-8")))


def _encode(value: Any) -> Any:
    return {"@ref": [value.entity, value.id]} if isinstance(value, Ref) else value


def _decode(meta: Entity, key: str, value: Any) -> Any:
    if isinstance(value, dict) and "@ref" in value:
        return Ref(*value["@ref"])
    return value
