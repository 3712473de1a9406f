"""`python main.py --demo`: a local emulator with a seeded demo org, kept under .demo/ between runs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

DEMO_TOKEN = "demo-local-token"


def start(work_dir: Path, *, reset: bool = False, seed: int = 7) -> Any:
    """Start the emulator in this process; its org is saved to .demo/state.json when it stops. It listens
    on the port it had last time (kept in .demo/port) when that port is free: run folders and jobs files
    belong to one environment address, so `--demo detect`, then `--demo group` in another command, must
    meet the same one."""
    from dataverse_emulator import start_emulator

    folder = work_dir / ".demo"
    if reset and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    port_file = folder / "port"
    try:
        last = int(port_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        last = 0
    options: dict[str, Any] = {"dataset": "demo", "seed": seed, "state_file": folder / "state.json",
                               "job_seconds": 3.0}
    try:
        handle = start_emulator(**options, port=last if 0 < last < 65536 else 0)
    except OSError:  # taken by something else now: another port (and a note of it for next time)
        handle = start_emulator(**options, port=0)
    port_file.write_text(f"{handle.port}\n", encoding="utf-8")
    return handle


BANNER = (
    "DEMO: this is a local Dataverse emulator with a made-up org (nothing leaves this machine).",
    "Try: 1 (entity contact, view 'Active Contacts for Duplicate Checking'), then 2, 3 and 4.",
)
