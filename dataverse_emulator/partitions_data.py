"""The `synthetic-partitions:N` dataset: more duplicates than one detection job may report, in known groups.

A BulkDetectDuplicates job reports at most 5,000 records with duplicates, so a view with three times that
many must be split (by `contactid` GUID ranges or `createdon` ranges) into jobs that each stay under the cap.
This dataset is that view: at least N active contacts that have duplicates (the last group may run over by
up to 3), in groups of known structure under the base datasets' published rules ("Contacts with the same
e-mail", "Contacts with the same business phone", both excluding inactive records), plus N/2 active contacts
without duplicates and N/100 inactive look-alikes that share a group's e-mail (the view's `statecode eq 0` and
the rules' "exclude inactive" both leave them out). The view is "Active Contacts for Duplicate Checking".

Group kinds, in the repeating order pair, pair, triple, chain, pair, long-chain:
- `pair`: two contacts share `part{g}@dup.partitions.example`;
- `triple`: three share it;
- `chain`: A and B share the e-mail, B and C share telephone1 `+1 206 {g:07d}`; A and C do not match;
- `long-chain`: a chain whose C also shares `part{g}.d@dup.partitions.example` with a fourth contact D.
Everyone else has a unique e-mail (`solo{i}@mail.partitions.example`) and phone (`+1 555 {i:07d}`). Ids are
random version-4 GUIDs (so every GUID range holds a share), `createdon` is spread over 2015-2025; both come from
a generator seeded with the dataset seed alone, so `known_groups` recomputes the groups without a store.
"""

from __future__ import annotations

import calendar
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .store import Ref, Store

PREFIX = "synthetic-partitions:"
KINDS = ("pair", "pair", "triple", "chain", "pair", "long-chain")
SIZES = {"pair": 2, "triple": 3, "chain": 3, "long-chain": 4}
_FIRST = ["Ada", "Bea", "Cyd", "Dov", "Eli", "Fay", "Gil", "Hal", "Ida", "Jo", "Kai", "Lea", "Max", "Ned", "Oz"]
_LAST = ["Archer", "Bishop", "Carver", "Dalton", "Ellis", "Fowler", "Garner", "Hardy", "Irwin", "Jensen"]
_START = calendar.timegm((2015, 1, 1, 0, 0, 0))
_SPAN = calendar.timegm((2026, 1, 1, 0, 0, 0)) - _START


@dataclass(frozen=True)
class KnownGroup:
    """One designed duplicate group: its kind (see the module docstring) and its contacts' ids."""

    kind: str
    ids: tuple[str, ...]


def parse_count(name: str) -> int:
    """`synthetic-partitions:15000` -> 15000; ValueError for anything else."""
    if not name.startswith(PREFIX) or not name[len(PREFIX):].isdigit():
        raise ValueError(f"{name!r} is not {PREFIX}N")
    return int(name[len(PREFIX):])


def layout(count: int, seed: int) -> tuple[list[dict[str, Any]], list[KnownGroup]]:
    """The contacts (column values) and the groups, deterministic from (count, seed)."""
    rng = random.Random(f"dataverse-emulator/partitions/{seed}")
    rows: list[dict[str, Any]] = []
    groups: list[KnownGroup] = []

    def contact(email: str | None = None, phone: str | None = None, **extra: Any) -> dict[str, Any]:
        n = len(rows)
        row = {"contactid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
               "createdon": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_START + int(rng.random() * _SPAN))),
               "emailaddress1": email or f"solo{n}@mail.partitions.example", "telephone1": phone or f"+1 555 {n:07d}",
               "firstname": rng.choice(_FIRST), "lastname": rng.choice(_LAST), **extra}
        rows.append(row)
        return row

    members = 0
    while members < count:
        g = len(groups)
        kind = KINDS[g % len(KINDS)]
        shared, link = f"part{g}@dup.partitions.example", f"+1 206 {g:07d}"
        if kind in ("pair", "triple"):
            group = [contact(shared) for _ in range(SIZES[kind])]
        else:
            a, b = contact(shared), contact(shared, link)
            c = contact(f"part{g}.d@dup.partitions.example" if kind == "long-chain" else None, link)
            group = [a, b, c] + ([contact(c["emailaddress1"])] if kind == "long-chain" else [])
        groups.append(KnownGroup(kind, tuple(r["contactid"] for r in group)))
        members += len(group)
    for _ in range(count // 2):
        contact()
    for i in range(count // 100):
        contact(f"part{i * len(KINDS)}@dup.partitions.example", statecode=1, statuscode=2)
    return rows, groups


def build(store: Store, owner: Ref, count: int, seed: int) -> None:
    """Insert the dataset's contacts (the base views and rules come from datasets.add_base)."""
    rows, _ = layout(count, seed)
    for row in rows:
        full = f"{row['firstname']} {row['lastname']}"
        store.insert("contact", {**row, "modifiedon": row["createdon"], "ownerid": owner, "fullname": full})


def known_groups(name: str, seed: int = 1) -> list[KnownGroup]:
    """The designed duplicate groups of `synthetic-partitions:N` built with this seed."""
    return layout(parse_count(name), seed)[1]
