"""`python main.py --demo`: a local emulator with a seeded demo org, kept under .demo/ between runs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

DEMO_TOKEN = "demo-local-token"


def start(work_dir: Path, *, reset: bool = False, seed: int = 7) -> Any:
    """Start the emulator in this process; its org is saved to .demo/state.json when it stops."""
    from dataverse_emulator import start_emulator

    folder = work_dir / ".demo"
    if reset and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return start_emulator(dataset="demo", seed=seed, state_file=folder / "state.json", job_seconds=3.0)


BANNER = (
    "DEMO: this is a local Dataverse emulator with a made-up org (nothing leaves this machine).",
    "Try: 1 (entity contact, view 'Active Contacts for Duplicate Checking'), then 2, 3 and 4.",
)
