"""Step 4's Merge requests: one POST each, or, where Dataverse's limit on the number of requests binds, several
merges of different workers in one `$batch` (issue 16).

Dataverse allows each user 6,000 requests and 1,200 s of server time per 5 minutes (per web server): 0.2 s of
server time per request. Merges quicker than that use up the request count first, and a `$batch` counts once
against it (its parts' server time all counts). So, with the default `batch_size` (None), the merges that
workers are sending at the same moment travel together once Merges prove quick: a batch carries about 0.25 s
of Merges (their round trips, latency included, measured as the run goes), at most 10 (Microsoft: "start with
a small batch size of 10"). A Merge that takes 0.25 s or more goes alone, since there the execution time
binds first, and a batch would only make its merges wait for each other. (Waiting for the 429 that says the
request count is the limit would come too late: by then the whole window's requests are spent, and its
Retry-After runs for minutes.) `batch_size=1` never batches; `batch_size=N` always sends N at a time.

Nothing changes for the journal: each worker journals its merge's snapshot and `sending` line before handing
the merge here, so every merge of a batch is on disk before the batch is posted; each change set's answer is
its own merge's result; a batch whose answer is lost raises OutcomeUnknownError in every merge of it, and the
runner settles each by asking Dataverse (runner._settle), as for a single Merge. A worker holds one chain (the
merges into one target, in order) and waits for its merge's answer before sending the next, so a batch never
carries two merges into one target.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from dataverse import DataverseClient
from errors import DataverseError, ResolverError

log = logging.getLogger(__name__)

MAX_SIZE = 10           # merges per $batch when the size is decided here
TARGET_BATCH_S = 0.25   # server time one batch should carry: size = this / one Merge's time
LINGER_S = 0.1          # how long a merge waits for others to join its batch (about the time between two
                        # batches coming back, whose workers fill the next) before it goes with fewer
_SMOOTHING = 0.2        # weight of the newest Merge time in its running average


@dataclass(eq=False)
class _Part:
    """One worker's merge waiting in (or sent with) a batch."""

    body: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class MergeSender:
    """Sends every worker's Merge (thread-safe); `merge` returns when that merge's answer is in, or raises the
    DataverseError a single POST Merge would have raised."""

    def __init__(self, client: DataverseClient, batch_size: int | None = None) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._client = client
        self._fixed = batch_size
        self._cond = threading.Condition()
        self._pending: list[_Part] = []
        self._merge_s: float | None = None   # running average of one Merge's share of a round trip
        self.batches = 0                     # $batch requests answered
        self.batched = 0                     # merges they carried

    def size(self) -> int:
        """How many merges go in one request now."""
        if self._fixed is not None:
            return self._fixed
        if not self._merge_s:
            return 1
        return max(1, min(MAX_SIZE, int(TARGET_BATCH_S / self._merge_s)))

    def merge(self, body: dict[str, Any]) -> None:
        """POST Merge `body`, alone or in the next batch."""
        size = self.size()
        if size <= 1:
            throttled, started = self._client.stats.throttled, time.monotonic()
            self._client.post("Merge", body)
            self._observe(time.monotonic() - started, 1, throttled)
            return
        part = _Part(body)
        with self._cond:
            self._pending.append(part)
            batch = self._take() if len(self._pending) >= size else None
        if batch is None and not part.done.wait(LINGER_S):
            with self._cond:  # nobody filled the batch in time: send what is waiting (unless it has gone)
                batch = self._take() if part in self._pending else None
        if batch:
            self._send(batch)
        part.done.wait()
        if part.error is not None:
            raise part.error

    def _take(self) -> list[_Part]:
        """Everything waiting (at most one batch: whoever makes it full takes it at once). Under the lock."""
        batch, self._pending = self._pending, []
        return batch

    def _send(self, batch: list[_Part]) -> None:
        """Post `batch` and hand each merge its answer; an error of the whole batch is every merge's."""
        throttled, started = self._client.stats.throttled, time.monotonic()
        try:
            answers = self._client.batch_post("Merge", [p.body for p in batch])
            self._observe(time.monotonic() - started, len(batch), throttled)
            with self._cond:
                self.batches += 1
                self.batched += len(batch)
            for p, answer in zip(batch, answers, strict=True):
                p.error = copy.copy(answer) if isinstance(answer, DataverseError) else None
        except Exception as exc:  # noqa: BLE001 - each merge of the batch raises it in its own worker
            log.warning("a $batch of %d merges: %s", len(batch), getattr(exc, "message", exc))
            for p in batch:
                p.error = copy.copy(exc) if isinstance(exc, ResolverError) else exc
        finally:
            for p in batch:
                p.done.set()

    def _observe(self, seconds: float, merges: int, throttled_before: int) -> None:
        """Learn how long one Merge takes (a throttled round trip, which includes the wait, says nothing)."""
        if self._client.stats.throttled != throttled_before:
            return
        sample = seconds / merges
        with self._cond:
            self._merge_s = sample if self._merge_s is None else \
                (1 - _SMOOTHING) * self._merge_s + _SMOOTHING * sample
