"""The merge step's executor: a bounded worker pool with an adaptive concurrency limit and per-target chains.

Merges into the same target must run one after another, in the plan's order (each one's UpdateContent was
computed on the target as the earlier ones leave it), so work comes as *chains*: a chain is held by one
worker at a time, and different chains run in parallel. How many run at once follows the server (AIMD,
as TCP does): start at the server's ``x-ms-dop-hint`` and double after each window of completions until the
first 429 (slow start), then add one after each window with no new 429. A 429 for too many concurrent
requests multiplies the limit by 0.7 (Microsoft: reduce the number of threads); one for the number of
requests or the execution time over the 5-minute window only stops the growth: every thread already waits
out its Retry-After ("let the server tell you when to send more"), and fewer workers afterwards would only
run below the ceiling (issue 16: with several web servers, cutting on those too kept 4 servers at 85% of
their ceiling at 100 ms latency). The limit only decides how hard we push, never whether a merge succeeds.

Ctrl-C in the main thread stops handing out work; merges in flight finish (and are journaled) first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_MAX_WORKERS = 32
DEFAULT_START = 4


@dataclass(frozen=True)
class Progress:
    """A snapshot for the progress line: done/total, rate, ETA, concurrency and 429s seen."""

    done: int
    total: int
    elapsed_s: float
    per_s: float
    eta_s: float | None
    concurrency: int
    in_flight: int
    throttled: int
    counts: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        """One progress line: ``120/600 (20%), 15.8/s, about 0:30 left, 12 at once, 3 x 429``."""
        pct = 100 * self.done / self.total if self.total else 100.0
        text = f"{self.done}/{self.total} ({pct:.0f}%), {self.per_s:.1f}/s"
        if self.eta_s is not None and self.done < self.total:
            minutes, seconds = divmod(int(self.eta_s + 0.5), 60)
            hours, minutes = divmod(minutes, 60)
            left = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
            text += f", about {left} left"
        text += f", {self.concurrency} at once"
        return text + (f", {self.throttled} x 429" if self.throttled else "")


ProgressCallback = Callable[[Progress], None]


class AdaptiveLimit:
    """Slow start, then additive-increase / multiplicative-decrease concurrency limit, decided once per window of
    completions.

    A window is as many completions as the current limit (about one round trip of every worker). Pure:
    feed it completions, the client's running count of 429s and, of those, the ones that call for fewer
    workers (`overloaded`; None: every 429 does).
    """

    def __init__(self, start: int, maximum: int, *, minimum: int = 1, decrease: float = 0.7) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.decrease = decrease
        self.value = float(min(max(start, self.minimum), self.maximum))
        self.slow_start = True
        self._in_window = 0
        self._at_start: tuple[int, int] | None = None   # (throttled, overloaded) when the window began
        self._lock = threading.Lock()

    @property
    def current(self) -> int:
        return int(self.value)

    def completed(self, throttled_total: int, overloaded_total: int | None = None) -> int:
        """Record one completion; returns the (possibly new) limit."""
        counts = (throttled_total, throttled_total if overloaded_total is None else overloaded_total)
        with self._lock:
            if self._at_start is None:
                self._at_start = counts
            self._in_window += 1
            if self._in_window >= max(1, self.current):
                throttled, overloaded = (now > then for now, then in zip(counts, self._at_start, strict=True))
                if throttled:
                    self.slow_start = False
                if overloaded:
                    self.value = max(float(self.minimum), self.value * self.decrease)
                elif not throttled:
                    grown = self.value * 2 if self.slow_start else self.value + 1
                    self.value = min(float(self.maximum), grown)
                self._in_window = 0
                self._at_start = counts
            return self.current


class ChainPool(Generic[T]):
    """Run `work(item)` over chains of items: items of one chain in order, chains in parallel. `throttled` counts
    the 429s so far, `overloaded` those of them that call for fewer workers (None: all of them).

    `work` returns a status string (counted in the progress) and must handle its own expected errors;
    anything it raises stops the pool and is re-raised by run() after in-flight items finish.
    """

    def __init__(
        self,
        chains: Sequence[Sequence[T]],
        work: Callable[[T], str],
        *,
        limit: AdaptiveLimit,
        throttled: Callable[[], int] = lambda: 0,
        overloaded: Callable[[], int] | None = None,
        on_progress: ProgressCallback | None = None,
        progress_every_s: float = 0.5,
    ) -> None:
        self._chains: deque[Sequence[T]] = deque(c for c in chains if c)
        self._work = work
        self.limit = limit
        self._throttled = throttled
        self._overloaded = overloaded
        self._on_progress = on_progress
        self._every = progress_every_s
        self.total = sum(len(c) for c in self._chains)
        self.counts: Counter[str] = Counter()
        self._cond = threading.Condition()
        self._active = 0
        self._done = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._started = 0.0

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Hand out no more work (items in flight finish)."""
        with self._cond:
            self._stop.set()
            self._cond.notify_all()

    def run(self) -> Counter[str]:
        """Run every chain (or until stop()/Ctrl-C/an error); returns the counts of work() results."""
        self._started = time.monotonic()
        n = min(self.limit.maximum, len(self._chains))
        threads = [threading.Thread(target=self._worker, name=f"merge-{i + 1}", daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        try:
            self._wait(threads)
        except BaseException as exc:  # Ctrl-C, or the progress line's output went away: stop cleanly
            log.warning("Stopping (%s): no new merges are started; waiting for the %d in flight",
                        type(exc).__name__, self._active)
            self.stop()
            for t in threads:
                t.join()
            if isinstance(exc, KeyboardInterrupt):
                self._report()
            raise
        self._report()
        if self._error is not None:
            raise self._error
        return self.counts

    def _wait(self, threads: list[threading.Thread]) -> None:
        """Join the workers from the main thread (where Ctrl-C arrives), reporting progress as they go."""
        next_report = time.monotonic() + self._every
        for t in threads:
            while t.is_alive():
                t.join(timeout=max(0.001, min(0.05, next_report - time.monotonic())))
                if time.monotonic() >= next_report:
                    self._report()
                    next_report = time.monotonic() + self._every

    def _worker(self) -> None:
        while True:
            chain = self._take_chain()
            if chain is None:
                return
            for item in chain:
                if not self._acquire():
                    return
                try:
                    status = self._work(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
                    self._fail(exc)
                    return
                finally:
                    self._release()
                self._finished(status)

    def _take_chain(self) -> Sequence[T] | None:
        with self._cond:
            if self._stop.is_set() or not self._chains:
                return None
            return self._chains.popleft()

    def _acquire(self) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: self._stop.is_set() or self._active < self.limit.current)
            if self._stop.is_set():
                return False
            self._active += 1
            return True

    def _release(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def _finished(self, status: str) -> None:
        new_limit = self.limit.completed(self._throttled(), self._overloaded() if self._overloaded else None)
        with self._cond:
            self._done += 1
            self.counts[status] += 1
            self._cond.notify_all()  # the limit may have grown
        log.debug("concurrency limit %d", new_limit)

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = exc
        self.stop()

    def progress(self) -> Progress:
        with self._cond:
            done, active, counts = self._done, self._active, dict(self.counts)
        elapsed = max(1e-9, time.monotonic() - self._started)
        per_s = done / elapsed
        eta = (self.total - done) / per_s if per_s > 0 else None
        return Progress(done=done, total=self.total, elapsed_s=elapsed, per_s=per_s, eta_s=eta,
                        concurrency=self.limit.current, in_flight=active, throttled=self._throttled(), counts=counts)

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.progress())
