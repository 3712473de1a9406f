"""Runs step 4 once against a running emulator: the subprocess the SIGKILL tests kill and restart
(`kill_at_random_points`).

Usage: python -m tests.merge_worker ENVIRONMENT_URL RUN_FOLDER [WORKERS [BATCH_SIZE]] (from the repository root).
Prints the counts as JSON.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import merge_duplicates as md
from auth import StaticTokenProvider
from dataverse import ClientSettings, DataverseClient
from runfolder.folder import RunFolder

REPO = Path(__file__).resolve().parent.parent
WORKER = "tests.merge_worker"   # run as a module from the repository root: no sys.path edits


def journal_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_at_random_points(url: str, run: RunFolder, args: list[str], rounds: int, seed: int) -> int:
    """Start this worker `rounds` times with `args` (workers, batch size), each killed with SIGKILL after a
    random 15-55 more journal lines; then run it once to the end, which must succeed. Returns the kills."""
    rng = random.Random(seed)
    kills = 0
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, "-m", WORKER, url, str(run.root), *args], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kill_at = journal_lines(run.journal_path) + rng.randint(15, 55)  # a random point of this run's progress
        deadline = time.monotonic() + 30
        while proc.poll() is None and journal_lines(run.journal_path) < kill_at and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
    final = subprocess.run([sys.executable, "-m", WORKER, url, str(run.root), *args], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, final.stderr
    return kills


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    url, folder = argv[1], Path(argv[2])
    workers = int(argv[3]) if len(argv) > 3 else None
    batch_size = int(argv[4]) if len(argv) > 4 else None
    settings = md.MergeSettings(entity="contact", workers=workers, batch_size=batch_size)
    run = RunFolder(folder)
    with DataverseClient(url, StaticTokenProvider("t"), ClientSettings(backoff_base=0.05)) as client:
        result = md.run(client, run, md.load(client, run, settings), settings)
    print(json.dumps(result.counts()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
