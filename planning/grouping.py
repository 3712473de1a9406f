"""Duplicate pairs -> groups: connected components by union-find, and the cap on how many to keep.

Pure functions: data in, data out. A chain A=B, B=C is one group {A, B, C}. A record alone is not a
group, so a self-pair (A, A) adds nothing. Output order is deterministic: members sorted within a
group, groups sorted by their first (smallest) id.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter

import numpy as np


def group_pairs(pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Connected components of the pairs, each sorted; groups sorted by their first id.

    Ids are interned to ints, then union-find runs in bulk over integer arrays (see `_roots`). About
    three seconds per million pairs on a slow machine, most of it interning the ids.
    """
    with _no_gc():
        index: dict[str, int] = {}
        intern = index.setdefault
        ints = [intern(x, len(index)) for x in chain.from_iterable(pairs)]
        if not ints:
            return []
        return _components(list(index), _roots(ints, len(index)))


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: building a million small lists would trigger it again and
    again (a third of the run time) while none of them can form a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _roots(ints: list[int], n: int) -> np.ndarray:
    """Each id's root (the smallest id index of its group), for the pairs (ints[0], ints[1]), (ints[2], ...).

    Union-find done for all pairs at once, as numpy array operations: each round every pair whose two
    roots differ hooks the larger root under the smaller (union), then pointers jump until every id
    points straight at its root (path compression). Each round removes at least one root per unfinished
    group, so it ends; random pairs and long chains take a dozen rounds of a few milliseconds each.
    A plain union-find loop (path halving, union by size) gives the same groups but costs a second more
    per million pairs in Python.
    """
    edges = np.asarray(ints, dtype=np.int64).reshape(-1, 2)
    u, v = edges[:, 0], edges[:, 1]
    roots = np.arange(n, dtype=np.int64)
    while True:
        ru, rv = roots[u], roots[v]
        apart = ru != rv
        if not apart.any():
            return roots
        u, v, ru, rv = u[apart], v[apart], ru[apart], rv[apart]  # joined pairs never part again
        low = np.minimum(ru, rv)
        np.minimum.at(roots, ru, low)
        np.minimum.at(roots, rv, low)
        while True:
            jumped = roots[roots]
            if np.array_equal(jumped, roots):
                break
            roots = jumped


def _components(ids: list[str], roots: np.ndarray) -> list[list[str]]:
    """Members bucketed by root (a stable sort), each group sorted, groups in order of their first id."""
    order = np.argsort(roots, kind="stable")
    cuts = (np.flatnonzero(np.diff(roots[order])) + 1).tolist()
    names = np.asarray(ids, dtype=object)[order].tolist()
    bounds = [0, *cuts, len(names)]
    # a self-pair (A, A) alone leaves A by itself: a record alone is not a group
    groups = [sorted(names[a:b]) for a, b in zip(bounds, bounds[1:], strict=False) if b - a > 1]
    groups.sort(key=itemgetter(0))
    return groups


def cap_groups(groups: Sequence[Sequence[str]], max_duplicates: int | None) -> list[list[str]]:
    """The leading whole groups whose duplicates (records minus one target each) total <= max_duplicates.

    Groups are never split (a split group would merge into two targets). Stops at the first group that
    would go over, so the kept groups are a prefix of the input and a later run picks up the rest.
    None keeps everything.
    """
    if max_duplicates is None:
        return [list(g) for g in groups]
    kept: list[list[str]] = []
    total = 0
    for group in groups:
        total += len(group) - 1
        if total > max_duplicates:
            break
        kept.append(list(group))
    return kept


def group_id(members: Iterable[str]) -> str:
    """A group's stable id: its smallest member id (the same however the pairs were listed)."""
    return min(members)


def duplicates_in(groups: Iterable[Sequence[str]]) -> int:
    """How many merges the groups need: the subordinates, i.e. records minus one target per group."""
    return sum(len(g) - 1 for g in groups)


def summary(groups: Sequence[Sequence[str]], pairs_read: int) -> dict[str, object]:
    """Figures for the step's report: pairs read, groups, records, duplicates, largest group, sizes.

    `size_histogram` maps a group size to how many groups have it, smallest size first.
    """
    sizes = Counter(len(g) for g in groups)
    return {
        "pairs_read": pairs_read,
        "groups": len(groups),
        "records": sum(len(g) for g in groups),
        "duplicates": duplicates_in(groups),
        "largest_group": max(sizes, default=0),
        "size_histogram": dict(sorted(sizes.items())),
    }
