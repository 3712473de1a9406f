"""Benchmark: step 2 (group) at scale. Requests per record and records/s, both shapes of job results.

    python -m bench.download [--sizes 1000,10000] [--latency-ms 100] [--retrieve-ms 0] [--batch-size 100]
                             [--run-dir DIR] [--json PATH]

For each size and shape: an emulator in its own process (as Dataverse is: the figures are the tool's, not
the emulator's CPU shared with it) with a synthetic org sized so that about `size` records have duplicates,
step 1 over the whole view (split into several jobs where one would hit the 5,000 cap), then step 2 over
HTTP. `--latency-ms` is added to every request by the emulator, a `$batch` counting once, as a real round
trip does; `--retrieve-ms` adds server time to every RetrieveDuplicates call (a batch takes the sum).
Step 2 writes one file per record: the run folder goes on a RAM disk when there is one (`--run-dir`), and
the script prints how fast that folder and the temp folder create files (this VM's disk: 800-7,000/s).

Reported per row: step 2's requests, records per request (target: at least 50, in both shapes), records/s
(target in the base shape: at least 1,000 at 100 ms latency), and, for the download of records alone,
records per request and records/s with the default parallel reads and one chunk at a time.
- `pairs`: the job rows carry the pairs; step 2 reads them and downloads the records.
- `base`: the rows carry only base records (what Microsoft's sample shows); step 2 asks RetrieveDuplicates
  for each, 100 calls per `$batch`. Before batching: 11,054 requests for 11,002 records, 72 records/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import create_detection_job as detect
from auth import StaticTokenProvider
from dataverse import ClientSettings, DataverseClient
from group_duplicates import BATCH_SIZE, GroupSettings, download_records
from group_duplicates import run as group_run
from runfolder.folder import RunFolder

VIEW = "Active Contacts for Duplicate Checking"


def _serve(dataset: str, options: dict[str, Any], retrieve_ms: float, conn: Connection) -> None:
    """The child process: run an emulator until the parent says stop."""
    from dataverse_emulator import start_emulator

    handle = start_emulator(dataset, **options)
    if retrieve_ms > 0:
        real = handle.app.functions["RetrieveDuplicates"]

        def slow(ctx: Any, params: dict[str, Any]) -> Any:
            time.sleep(retrieve_ms / 1000)   # the call's own server time
            return real(ctx, params)

        handle.app.functions["RetrieveDuplicates"] = slow
    conn.send(handle.url)
    conn.recv()
    handle.stop()


@contextmanager
def emulator_process(dataset: str, retrieve_ms: float = 0.0, **options: Any) -> Iterator[str]:
    """An emulator in a spawned process (no fork with connections open); yields its URL."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(dataset, options, retrieve_ms, child), daemon=True)
    proc.start()
    try:
        yield str(parent.recv())
    finally:
        parent.send("stop")
        proc.join(timeout=30)


def detect_all(client: DataverseClient) -> tuple[str, ...]:
    """Step 1 over the whole view, split where a job hits the cap; the job ids."""
    settings = detect.DetectSettings("contact", VIEW)
    jobs = detect.run(client, settings).jobs
    jobs = detect.wait_for_jobs(client, jobs, settings, save=lambda _: None, on_progress=lambda *_: None,
                                poll_s=0.2)
    return jobs.job_ids


def _drop(record_id: str, record: dict) -> None:
    """The download alone is measured: records are not written."""


def files_per_s(folder: Path, count: int = 2000) -> int:
    """How fast `folder`'s file system creates small files the way step 2 writes records (temp + rename)."""
    from runfolder.folder import atomic_write_text

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        started = time.perf_counter()
        for i in range(count):
            atomic_write_text(Path(tmp) / f"{i}.json", "x" * 4000, durable=False)
        return round(count / (time.perf_counter() - started))


def default_run_dir() -> Path:
    """A RAM disk when there is one: the figures are then the tool's, not this machine's disk."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def measure(records: int, mode: str, latency_ms: float, retrieve_ms: float, run_dir: Path,
            batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    # synthetic:N puts ~20% of contacts in groups: size the org so that about `records` have duplicates
    with emulator_process(f"synthetic:{records * 5}", retrieve_ms, seed=3, job_seconds=0.2,
                          duplicate_records=mode, latency_ms=latency_ms) as url:
        job_ids = detect_all(DataverseClient(url, StaticTokenProvider("bench")))
        client = DataverseClient(url, StaticTokenProvider("bench"))    # step 2 on its own, as from the menu
        with tempfile.TemporaryDirectory(dir=run_dir) as tmp:
            started = time.perf_counter()
            settings = GroupSettings("contact", job_ids, batch_size=batch_size)
            result = group_run(client, RunFolder(Path(tmp) / "run"), settings)
            elapsed = time.perf_counter() - started
        ids = [i for g in result.groups.groups for i in g.record_ids]
        meta = client.entity("contact")
        before = client.stats.requests
        t0 = time.perf_counter()
        download_records(client, meta, ids, _drop)
        download_s = time.perf_counter() - t0
        download_requests = client.stats.requests - before
        one_at_a_time = DataverseClient(url, StaticTokenProvider("bench"), ClientSettings(read_workers=1))
        t0 = time.perf_counter()
        download_records(one_at_a_time, meta, ids, _drop)
        sequential_s = time.perf_counter() - t0
    return {"mode": mode, "records": len(ids), "jobs": len(job_ids), "group_requests": result.requests,
            "records_per_request": round(len(ids) / max(1, result.requests), 1),
            "group_s": round(elapsed, 2), "group_records_per_s": round(len(ids) / elapsed),
            "download_records_per_request": round(len(ids) / max(1, download_requests), 1),
            "download_records_per_s": round(len(ids) / download_s),
            "download_sequential_records_per_s": round(len(ids) / sequential_s)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--latency-ms", type=float, default=100.0, help="added to every request (default 100)")
    p.add_argument("--retrieve-ms", type=float, default=0.0, help="server time of one RetrieveDuplicates call")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help=f"RetrieveDuplicates calls per $batch (default {BATCH_SIZE}; 1 is about one request each)")
    p.add_argument("--run-dir", type=Path, default=default_run_dir(),
                   help="where the run folder goes (default: /dev/shm when there is one)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    disk = Path(tempfile.gettempdir())
    print(f"run folder in {args.run_dir} ({files_per_s(args.run_dir):,} files/s; {disk}: {files_per_s(disk):,} "
          "files/s): step 2 writes one file per record")
    rows = [measure(int(n), mode, args.latency_ms, args.retrieve_ms, args.run_dir, args.batch_size)
            for n in args.sizes.split(",") for mode in ("pairs", "base")]
    cols = list(rows[0])
    print("  ".join(f"{c:>{max(8, len(c))}}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]!s:>{max(8, len(c))}}" for c in cols))
    per_request = all(r["records_per_request"] >= 50 for r in rows)
    speed = all(r["group_records_per_s"] >= 1000 for r in rows if r["mode"] == "base")
    print("target: at least 50 records per request (both shapes):", "met" if per_request else "NOT met")
    print(f"target: at least 1,000 records/s in the base shape at {args.latency_ms:g} ms latency:",
          "met" if speed else "NOT met")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if per_request and speed else 1


if __name__ == "__main__":
    sys.exit(main())
