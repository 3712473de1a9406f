"""Service protection limits: per user, over a sliding window, with Dataverse's 429 codes and messages.

Three limits, as the real service enforces them (api-limits.md): the number of requests started in the last
window, the combined execution time of requests that finished in the last window, and the number of requests
in flight. `Limiter.acquire` is called before a request is processed and raises `ServiceError(429)` past any
of them; `Limiter.release` is called after, with the request's execution time. Time comes from an injectable
clock, and the window is whatever `Limits.window_s` says, so a benchmark can run the 300 s window as 10 s.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ServiceError
from .options import Limits

REQUESTS_CODE = "0x80072322"
EXEC_TIME_CODE = "0x80072321"
CONCURRENCY_CODE = "0x80072326"


@dataclass
class Ticket:
    """One admitted request; hand it back to `Limiter.release`."""

    user: str
    started: float


@dataclass
class _UserWindow:
    starts: deque[float] = field(default_factory=deque)               # start times in the window
    finished: deque[tuple[float, float]] = field(default_factory=deque)  # (end time, exec seconds)
    exec_sum: float = 0.0
    in_flight: int = 0


class Limiter:
    """Thread-safe sliding-window limiter, one window per user."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, _UserWindow] = {}

    def acquire(self, user: str) -> Ticket:
        """Admit a request or raise the 429 the service would answer."""
        lim = self.limits
        with self._lock:
            now = self.clock()
            w = self._users.setdefault(user, _UserWindow())
            self._expire(w, now)
            if w.in_flight >= lim.max_concurrent:
                raise throttled(CONCURRENCY_CODE, f"Number of concurrent requests exceeded the limit of "
                                f"{lim.max_concurrent}.", 1)
            if len(w.starts) >= lim.max_requests:
                raise throttled(REQUESTS_CODE, requests_message(lim), w.starts[0] + lim.window_s - now)
            if w.exec_sum >= lim.max_exec_s:
                raise throttled(EXEC_TIME_CODE, exec_message(lim), self._exec_wait(w, now))
            w.starts.append(now)
            w.in_flight += 1
            return Ticket(user, now)

    def release(self, ticket: Ticket, exec_seconds: float) -> None:
        with self._lock:
            now = self.clock()
            w = self._users.setdefault(ticket.user, _UserWindow())
            w.in_flight = max(0, w.in_flight - 1)
            w.finished.append((now, max(0.0, exec_seconds)))
            w.exec_sum += max(0.0, exec_seconds)

    def remaining(self, user: str) -> tuple[int, float]:
        """(requests left, execution seconds left) in the user's window, for the x-ms-ratelimit headers."""
        with self._lock:
            w = self._users.get(user)
            if w is None:
                return self.limits.max_requests, self.limits.max_exec_s
            self._expire(w, self.clock())
            return (max(0, self.limits.max_requests - len(w.starts)),
                    max(0.0, self.limits.max_exec_s - w.exec_sum))

    def _expire(self, w: _UserWindow, now: float) -> None:
        edge = now - self.limits.window_s
        while w.starts and w.starts[0] <= edge:
            w.starts.popleft()
        while w.finished and w.finished[0][0] <= edge:
            w.exec_sum -= w.finished.popleft()[1]
        if not w.finished:
            w.exec_sum = 0.0  # no float drift once the window is empty

    def _exec_wait(self, w: _UserWindow, now: float) -> float:
        """Seconds until enough finished requests leave the window to bring execution time under the limit."""
        total = w.exec_sum
        for end, secs in w.finished:
            total -= secs
            if total < self.limits.max_exec_s:
                return end + self.limits.window_s - now
        return self.limits.window_s


def throttled(code: str, message: str, wait_s: float) -> ServiceError:
    """A 429 with an integer Retry-After (>= 1) long enough that a client waiting it gets through."""
    retry = max(1, math.ceil(wait_s))
    return ServiceError(429, code, message, {"Retry-After": str(retry)})


def requests_message(lim: Limits) -> str:
    return (f"Number of requests exceeded the limit of {lim.max_requests} over time window of "
            f"{_num(lim.window_s)} seconds.")


def exec_message(lim: Limits) -> str:
    # the double space before "milliseconds" is in Microsoft's documented text
    ms = f"{round(lim.max_exec_s * 1000):,}"
    return (f"Combined execution time of incoming requests exceeded limit of {ms}  milliseconds over time window "
            f"of {_num(lim.window_s)} seconds. Decrease number of concurrent requests or reduce the duration of "
            "requests and try again later.")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def theoretical_ceiling(limits: Limits | None, merge_ms: float, latency_ms: float) -> float:
    """Merges per second the limits allow one user: the tightest of the request, time and concurrency limits."""
    merge_s, latency_s = merge_ms / 1000.0, latency_ms / 1000.0
    if limits is None:
        return math.inf
    candidates = [limits.max_requests / limits.window_s]
    if merge_s > 0:
        candidates.append(limits.max_exec_s / limits.window_s / merge_s)
    if merge_s + latency_s > 0:
        candidates.append(limits.max_concurrent / (merge_s + latency_s))
    return min(candidates)
