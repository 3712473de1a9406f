"""The adaptive pool: AIMD arithmetic, per-chain order under concurrency, bounded workers, stop and errors."""

from __future__ import annotations

import threading
import time

import pytest

from merging.pool import AdaptiveLimit, ChainPool, Progress


def test_limit_doubles_until_the_first_429_then_grows_by_one_per_clean_window() -> None:
    limit = AdaptiveLimit(start=4, maximum=40)
    for _ in range(4):
        limit.completed(0)
    assert limit.current == 8 and limit.slow_start   # slow start: double per clean window
    for _ in range(8):
        limit.completed(1, 0)
    assert limit.current == 8 and not limit.slow_start  # a window with a 429 ends it
    for _ in range(8):
        limit.completed(1, 0)
    assert limit.current == 9
    for _ in range(9):
        limit.completed(1, 0)
    assert limit.current == 10


def test_only_a_429_for_concurrency_cuts_the_limit_others_hold_it() -> None:
    """Issue 16: a 429 for the request count or the execution time is waited out by every thread (the throttle
    gate); cutting the workers too left several web servers below their ceiling. Too many at once cuts."""
    limit = AdaptiveLimit(start=10, maximum=20)
    throttled = overloaded = 0
    for _ in range(10):
        throttled += 1          # rate 429s: the window holds
        limit.completed(throttled, overloaded)
    assert limit.current == 10 and not limit.slow_start
    for _ in range(10):
        limit.completed(throttled, overloaded)
    assert limit.current == 11
    for _ in range(11):
        throttled += 1
        overloaded += 1         # "Number of concurrent requests exceeded the limit": fewer workers
        limit.completed(throttled, overloaded)
    assert limit.current == 7


def test_limit_shrinks_after_a_window_with_429s_and_stays_in_bounds() -> None:
    limit = AdaptiveLimit(start=10, maximum=10)
    throttled = 0
    for _ in range(10):
        throttled += 3
        limit.completed(throttled)
    assert limit.current == 7
    for _ in range(200):
        throttled += 1
        limit.completed(throttled)
    assert limit.current == 1
    for _ in range(1000):
        limit.completed(throttled)
    assert limit.current == 10


def test_start_is_clamped_to_maximum() -> None:
    assert AdaptiveLimit(start=64, maximum=32).current == 32
    assert AdaptiveLimit(start=0, maximum=32).current == 1


def test_chains_keep_their_order_and_run_in_parallel() -> None:
    chains = [[(c, i) for i in range(5)] for c in range(20)]
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()
    active, peak = 0, 0

    def work(item: tuple[int, int]) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.002)
        with lock:
            active -= 1
            seen.append(item)
        return "merged"

    pool = ChainPool(chains, work, limit=AdaptiveLimit(8, 8))
    counts = pool.run()
    assert counts == {"merged": 100}
    for c in range(20):
        assert [i for cc, i in seen if cc == c] == list(range(5))
    assert 1 < peak <= 8


def test_one_worker_is_sequential() -> None:
    active, peak = 0, 0
    lock = threading.Lock()

    def work(item: int) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.001)
        with lock:
            active -= 1
        return "ok"

    ChainPool([[i] for i in range(30)], work, limit=AdaptiveLimit(4, 1)).run()
    assert peak == 1


def test_progress_reports_rate_and_eta() -> None:
    reports: list[Progress] = []
    pool = ChainPool([[i] for i in range(40)], lambda i: (time.sleep(0.005), "merged")[1],
                     limit=AdaptiveLimit(4, 4), on_progress=reports.append, progress_every_s=0.01)
    pool.run()
    assert reports[-1].done == reports[-1].total == 40
    assert reports[-1].per_s > 0 and reports[-1].counts == {"merged": 40}
    assert any(r.done < r.total and r.eta_s is not None for r in reports)


def test_ctrl_c_lets_in_flight_items_finish_then_reraises() -> None:
    finished: list[int] = []
    started = threading.Event()

    def work(item: int) -> str:
        started.set()
        time.sleep(0.05)
        finished.append(item)
        return "merged"

    def progress(p: Progress) -> None:
        if started.is_set():
            raise KeyboardInterrupt

    pool = ChainPool([[i] for i in range(100)], work, limit=AdaptiveLimit(4, 4), on_progress=progress,
                     progress_every_s=0.01)
    with pytest.raises(KeyboardInterrupt):
        pool.run()
    assert 0 < len(finished) < 100
    assert pool.progress().in_flight == 0 and pool.progress().done == len(finished)


def test_an_error_in_work_stops_the_pool_and_is_reraised() -> None:
    def work(item: int) -> str:
        if item == 3:
            raise OSError("disk full")
        return "merged"

    with pytest.raises(OSError, match="disk full"):
        ChainPool([[i] for i in range(50)], work, limit=AdaptiveLimit(1, 1)).run()


def test_progress_line_reads_well() -> None:
    p = Progress(done=120, total=600, elapsed_s=8, per_s=15.0, eta_s=32.0, concurrency=12, in_flight=12, throttled=3)
    assert str(p) == "120/600 (20%), 15.0/s, about 0:32 left, 12 at once, 3 x 429"
    long = Progress(done=1, total=99999, elapsed_s=1, per_s=1.0, eta_s=3725.0, concurrency=4, in_flight=4,
                    throttled=0)
    assert str(long) == "1/99999 (0%), 1.0/s, about 1:02:05 left, 4 at once"
