"""grouping: pairs -> connected groups, the cap, ids and the summary."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from planning.grouping import cap_groups, duplicates_in, group_id, group_pairs, summary


def _components_by_search(pairs: list[tuple[str, str]]) -> list[list[str]]:
    """Reference: plain graph search."""
    links: dict[str, set[str]] = {}
    for a, b in pairs:
        if a != b:
            links.setdefault(a, set()).add(b)
            links.setdefault(b, set()).add(a)
    seen: set[str] = set()
    groups = []
    for start in links:
        if start in seen:
            continue
        stack, group = [start], []
        seen.add(start)
        while stack:
            node = stack.pop()
            group.append(node)
            for nxt in links[node] - seen:
                seen.add(nxt)
                stack.append(nxt)
        groups.append(sorted(group))
    return sorted(groups)


@pytest.mark.parametrize(("pairs", "expected"), [
    ([("a", "b"), ("b", "c")], [["a", "b", "c"]]),                      # a chain is one group
    ([("c", "b"), ("a", "d"), ("b", "d")], [["a", "b", "c", "d"]]),      # joined late
    ([("a", "b"), ("b", "a")], [["a", "b"]]),                             # listed both ways
    ([("a", "a")], []),                                                   # a record alone is not a group
    ([("a", "a"), ("a", "b")], [["a", "b"]]),
    ([("x", "y"), ("b", "a"), ("m", "n"), ("n", "o")], [["a", "b"], ["m", "n", "o"], ["x", "y"]]),
    ([], []),
])
def test_group_pairs(pairs: list[tuple[str, str]], expected: list[list[str]]) -> None:
    assert group_pairs(pairs) == expected


def test_accepts_a_generator_and_order_of_pairs_does_not_matter() -> None:
    rng = random.Random(7)
    pairs = [(f"r{rng.randrange(60):02d}", f"r{rng.randrange(60):02d}") for _ in range(50)]
    expected = group_pairs(pairs)
    for _ in range(5):
        shuffled = [(b, a) if rng.random() < 0.5 else (a, b) for a, b in rng.sample(pairs, len(pairs))]
        assert group_pairs(p for p in shuffled) == expected


def test_matches_a_plain_graph_search_on_random_graphs() -> None:
    rng = random.Random(3)
    for size in (5, 40, 300):
        pairs = [(f"id{rng.randrange(size)}", f"id{rng.randrange(size)}") for _ in range(size)]
        groups = group_pairs(pairs)
        assert groups == _components_by_search(pairs)
        assert [g[0] for g in groups] == sorted(g[0] for g in groups)


def test_a_million_pairs_in_seconds_not_minutes() -> None:
    """A guard against a quadratic slip, not the performance target: bench/pure_steps.py measures that
    (1M pairs in under 5 s); a timed test on a shared CI machine would only flake."""
    rng = np.random.default_rng(1)
    pool = [f"{i:036x}" for i in range(2_000_000)]  # GUID-length ids; random pairs over twice as many ids
    ends = rng.integers(0, len(pool), size=(2, 1_000_000)).tolist()
    pairs = [(pool[a], pool[b]) for a, b in zip(ends[0], ends[1], strict=True)]
    start = time.process_time()  # CPU time: other jobs on a shared CI machine do not count against us
    groups = group_pairs(pairs)
    elapsed = time.process_time() - start
    assert elapsed < 30.0, f"grouping 1M pairs took {elapsed:.1f} s of CPU"
    assert all(len(g) >= 2 for g in groups) and len(groups) > 200_000


@pytest.mark.parametrize(("limit", "expected_sizes"), [
    (None, [3, 2, 4, 2]),
    (0, []),
    (1, []),        # the first group alone has 2 duplicates: nothing fits, and groups are never split
    (2, [3]),
    (3, [3, 2]),
    (5, [3, 2]),    # stops at the first group that would go over: a prefix, the rest for a later run
    (6, [3, 2, 4]),
    (100, [3, 2, 4, 2]),
])
def test_cap_keeps_whole_groups_in_order(limit: int | None, expected_sizes: list[int]) -> None:
    groups = [["a1", "a2", "a3"], ["b1", "b2"], ["c1", "c2", "c3", "c4"], ["d1", "d2"]]
    capped = cap_groups(groups, limit)
    assert [len(g) for g in capped] == expected_sizes
    assert capped == groups[: len(capped)]
    assert limit is None or duplicates_in(capped) <= limit


def test_group_id_is_the_smallest_member() -> None:
    assert group_id(["c", "a", "b"]) == "a"
    assert group_id(("b2", "b1")) == "b1"


def test_summary() -> None:
    groups = [["a", "b"], ["c", "d", "e"], ["f", "g"], ["h", "i", "j", "k"]]
    assert summary(groups, pairs_read=9) == {
        "pairs_read": 9, "groups": 4, "records": 11, "duplicates": 7, "largest_group": 4,
        "size_histogram": {2: 2, 3: 1, 4: 1},
    }
    assert summary([], 0)["largest_group"] == 0
