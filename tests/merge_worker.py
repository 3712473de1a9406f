"""Runs step 4 once against a running emulator: the subprocess the SIGKILL test kills and restarts.

Usage: python tests/merge_worker.py ENVIRONMENT_URL RUN_FOLDER [WORKERS]. Prints the counts as JSON.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import merge_duplicates as md  # noqa: E402
from auth import StaticTokenProvider  # noqa: E402
from dataverse import ClientSettings, DataverseClient  # noqa: E402
from runfolder.folder import RunFolder  # noqa: E402


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    url, folder = argv[1], Path(argv[2])
    workers = int(argv[3]) if len(argv) > 3 else None
    settings = md.MergeSettings(entity="contact", workers=workers)
    run = RunFolder(folder)
    with DataverseClient(url, StaticTokenProvider("t"), ClientSettings(backoff_base=0.05)) as client:
        result = md.run(client, run, md.load_plan(run, settings), settings)
    print(json.dumps(result.counts()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
