"""Step 3's audit files and review page, built in a second process while this one plans (issue 12).

Planning is one plain loop in this process. What it hands on for each merge (the audit rows) becomes an audit
CSV and the review page's data; building those is Python work as large as the planning itself, so a helper
process does it on the machine's other core. The helper is a fresh interpreter (`python -m
report.output_process`), never a fork: it inherits no connection, no client and no lock, and it never talks
to Dataverse. A reader thread takes the batches of audit rows off its stdin as they come (pickled, from
this process only, each framed by its length), so this process never waits on the pipe while the helper
works; the helper writes the audit files with its own `AuditWriter`, renders review.html when told to, and
answers once on its stdout: the number of audit files written, or the error that stopped it. If this
process dies, the helper reads the end of its stdin and exits; the files it wrote are in step 3's temp
folder, which is then discarded.

`OutputProcess` is an audit sink (`planning.planner.AuditSink`): step 3 passes it to `plan_all` in place of
a `ReviewCollector`.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from errors import RunStateError
from planning.audit_files import AuditRows
from runfolder.plan_file import PlanHeader
from runfolder.state import PlannedMerge

ROOT = Path(__file__).resolve().parents[1]
BATCH = 256  # audit rows per message
_FRAME = struct.Struct("<Q")  # each message: its length, then the pickle


class OutputProcess:
    """Use as a context manager: `add` each merge's audit rows, then `finish` with the plan to write the page."""

    def __init__(self, audit_dir: Path, first: Sequence[str]) -> None:
        self._args = (str(audit_dir.resolve()), list(first))
        self._first = list(first)
        self._batch: list[AuditRows] = []
        self._process: subprocess.Popen[bytes] | None = None
        self.written = 0

    def __enter__(self) -> OutputProcess:
        self._process = subprocess.Popen([sys.executable, "-m", "report.output_process"], cwd=ROOT,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._send(("start", *self._args))
        return self

    def add(self, rows: AuditRows) -> None:
        self._batch.append(rows)
        if len(self._batch) >= BATCH:
            self._send(("rows", self._batch))
            self._batch = []

    def finish(self, review_page: Path, header: PlanHeader, merges: Sequence[PlannedMerge],
               related: Mapping[str, Mapping[str, int]]) -> None:
        """Hand over the last rows and the plan; returns at once (the page is rendered while this process
        writes the plan and merges.csv). `close` waits for the helper."""
        if self._batch:
            self._send(("rows", self._batch))
            self._batch = []
        self._send(("finish", str(review_page.resolve()), header, list(merges), dict(related)))

    def close(self) -> int:
        """Wait for the helper; the number of audit files written, or the helper's error raised here."""
        process = self._require()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.close()
        except BrokenPipeError:  # the helper stopped early: its answer says why
            pass
        try:
            answer = pickle.load(process.stdout)
        except (EOFError, pickle.UnpicklingError):
            answer = ("failed", f"it ended with exit code {process.wait()}")
        process.wait()
        self._process = None
        if answer[0] == "done":
            self.written = int(answer[1])
            return self.written
        if answer[0] == "oserror":
            _, strerror, filename = answer
            raise RunStateError(f"Step 3 could not write {filename or 'its audit files'}: {strerror}.",
                                "Free some disk space or fix the folder's permissions, then rerun step 3 "
                                "(Prepare duplicates).", str(filename or ""))
        raise RunStateError(f"Step 3 could not write its audit files and review page: {answer[1]}.",
                            "See resolver.log, fix the cause and rerun step 3 (Prepare duplicates).")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._process is None:
            return
        if exc_type is None:
            self.close()
            return
        self._process.kill()  # the step failed: its temp folder is discarded, with whatever the helper wrote
        self._process.wait()
        self._process = None

    def _require(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("OutputProcess used outside its with block")
        return self._process

    def _send(self, message: tuple[Any, ...]) -> None:
        process = self._require()
        assert process.stdin is not None
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            process.stdin.write(_FRAME.pack(len(data)))
            process.stdin.write(data)
        except BrokenPipeError:
            self.close()  # raises the helper's error
            raise RunStateError("Step 3's helper process ended early.", "Rerun step 3 (Prepare duplicates).") \
                from None


def _messages(source: IO[bytes], inbox: queue.Queue[bytes | None]) -> None:
    """The helper's reader thread: every framed message into `inbox` as it arrives, so the step's writes into
    the pipe never wait for the helper to finish its last batch (None: the end of the input)."""
    try:
        while len(head := source.read(_FRAME.size)) == _FRAME.size:
            (size,) = _FRAME.unpack(head)
            data = source.read(size)
            if len(data) != size:
                break
            inbox.put(data)
    finally:
        inbox.put(None)


def serve(source: IO[bytes], answer: IO[bytes]) -> None:
    """The helper's loop (in the helper process)."""
    from planning.audit_files import AuditWriter
    from report.review_collect import ReviewCollector
    from report.review_page import write_review_page

    inbox: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
    threading.Thread(target=_messages, args=(source, inbox), name="output-inbox", daemon=True).start()

    def receive() -> Any:
        data = inbox.get()
        if data is None:
            raise EOFError
        return pickle.loads(data)

    try:
        start = receive()
        audit_dir, first = Path(start[1]), start[2]
        with AuditWriter(audit_dir, first) as audit:
            review = ReviewCollector(audit, first)
            while True:
                try:
                    message = receive()
                except EOFError:
                    return  # the step stopped before finishing: nothing to answer
                if message[0] == "rows":
                    for rows in message[1]:
                        review.add(rows)  # and on to the audit writer
                elif message[0] == "finish":
                    _, page, header, merges, related = message
                    write_review_page(Path(page), header, merges, review, related=related)
                    break
        outcome: tuple[Any, ...] = ("done", audit.written)
    except OSError as exc:
        outcome = ("oserror", exc.strerror or str(exc), exc.filename)
    except Exception as exc:  # noqa: BLE001 - a process boundary: reported to the step, which names it
        outcome = ("failed", f"{type(exc).__name__}: {exc}")
    pickle.dump(outcome, answer)
    answer.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole process group: the step decides
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by accident can break the answer
    serve(sys.stdin.buffer, answers)
    os._exit(0)  # the writer's threads are joined and the answer flushed: skip the interpreter's teardown
