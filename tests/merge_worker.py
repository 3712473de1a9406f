"""Runs step 4 once against a running emulator: the subprocess the SIGKILL test kills and restarts.

Usage: python -m tests.merge_worker ENVIRONMENT_URL RUN_FOLDER [WORKERS [BATCH_SIZE]] (from the repository root).
Prints the counts as JSON.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import merge_duplicates as md
from auth import StaticTokenProvider
from dataverse import ClientSettings, DataverseClient
from runfolder.folder import RunFolder


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
