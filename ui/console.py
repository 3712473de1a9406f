"""Everything the user sees and types: prompts that validate and re-ask, messages, a progress line.

The only module besides main.py that prints. Input comes from a stream (standard input by default) so
a script can drive the menu; on a terminal the progress line redraws in place.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from errors import OutputClosedError, UsageError

T = TypeVar("T")
PIPE_PROGRESS_EVERY_S = 5.0


class Console:
    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.tty = bool(getattr(self.stdout, "isatty", lambda: False)())
        self._progress_shown = False
        self._last_line = -PIPE_PROGRESS_EVERY_S
        self.closed = False   # the output went away (a closed pipe)

    def say(self, *lines: str) -> None:
        self._end_progress()
        for line in lines:
            self._write(line + "\n")

    def _write(self, text: str) -> None:
        """Every byte the user sees goes through here. When the reader of a pipe has gone (`... | head`),
        raise OutputClosedError once; from then on the output goes nowhere, quietly."""
        if self.closed:
            return
        try:
            self.stdout.write(text)
            self.stdout.flush()
        except BrokenPipeError:
            self.closed = True
            _silence(self.stdout)
            raise OutputClosedError from None

    def error(self, message: str) -> None:
        self.say(f"! {message}")

    def read(self, prompt: str) -> str:
        """One answer. EOFError (Ctrl-D, or the end of a script) and KeyboardInterrupt propagate."""
        self._end_progress()
        self._write(prompt)
        line = self.stdin.readline()
        if not line:
            self._write("\n")
            raise EOFError
        return line.rstrip("\r\n")

    def ask(self, prompt: str, parse: Callable[[str], T], default: str | None = None) -> T:
        """Ask until `parse` accepts the answer; a UsageError from it is shown and the prompt repeats."""
        suffix = f" [{default}]" if default not in (None, "") else ""
        while True:
            answer = self.read(f"{prompt}{suffix}: ").strip()
            if not answer and default is not None:
                answer = default
            try:
                return parse(answer)
            except UsageError as exc:
                self.error(str(exc))

    def confirm(self, prompt: str, default: bool = False) -> bool:
        return self.ask(prompt + (" (Y/n)" if default else " (y/N)"), parse_yes_no, "y" if default else "n")

    def progress(self, text: str, *, final: bool = False) -> None:
        """A status line: redrawn in place on a terminal; elsewhere (a log, a pipeline) a line every
        few seconds and the final one."""
        if self.tty:
            self._write("\r" + text.ljust(78))
            self._progress_shown = True
            return
        now = time.monotonic()
        if final or now - self._last_line >= PIPE_PROGRESS_EVERY_S:
            self._write(text + "\n")
            self._last_line = now

    def _end_progress(self) -> None:
        if self._progress_shown:
            self._progress_shown = False
            self._write("\n")

    def table(self, rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> None:
        cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        for n, row in enumerate(cells):
            self.say("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            if n == 0:
                self.say("  " + "  ".join("-" * w for w in widths))


def parse_yes_no(answer: str) -> bool:
    value = answer.strip().lower()
    if value in ("y", "yes", "true", "t", "1"):
        return True
    if value in ("n", "no", "false", "f", "0"):
        return False
    raise UsageError(f"'{answer}' is not yes or no.", "Type y or n.")


def _silence(stream: TextIO) -> None:
    """Point a closed standard output at the null device, so that Python's own flush at exit does not print
    'Exception ignored ... BrokenPipeError' (the recipe of Python's signal documentation)."""
    try:
        if stream is sys.__stdout__ and stream is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
    except (OSError, ValueError):
        pass
