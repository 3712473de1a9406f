"""Benchmark: how group's download scales. Requests per record and records/s at 1k and 10k records.

    python bench/download.py [--sizes 1000,10000] [--latency-ms 100] [--json PATH]

For each size: an emulator with a synthetic org, a finished detection job (pairs mode, so the figures
are the download itself), then step 2 (group) against it over HTTP. Reports the requests step 2 made to
download the records (the target: at most 1 request per 50 records), all its requests, and records/s:
with the default parallel reads (`read_workers`, 8 chunks at once) and, as the baseline, one chunk at a
time. `--latency-ms` is added to every request by the emulator (a real service takes 0.1-1 s to answer a
bulk read; with no latency the emulator, in this process, is the bottleneck).
A second row per size uses base-only job rows, where each base record costs one RetrieveDuplicates call.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth import StaticTokenProvider  # noqa: E402
from dataverse import ClientSettings, DataverseClient  # noqa: E402
from dataverse_emulator import start_emulator  # noqa: E402
from group_duplicates import GroupSettings, download_records  # noqa: E402
from group_duplicates import run as group_run  # noqa: E402
from runfolder.folder import RunFolder  # noqa: E402


def start_job(client: DataverseClient) -> str:
    import create_detection_job as detect

    view = detect.find_view(client, "contact", "Active Contacts for Duplicate Checking")
    job = detect.start_job(client, "contact", detect.to_query_expression(client, view.fetchxml), "bench")
    detect.wait_for_job(client, job, lambda s: None, poll_s=0.2)
    return job


def _drop(record_id: str, record: dict) -> None:
    """The download alone is measured: records are not written."""


def measure(records: int, mode: str, latency_ms: float) -> dict:
    # synthetic:N puts ~20% of contacts in groups: size the org so the job yields about `records`
    handle = start_emulator(f"synthetic:{records * 5}", seed=3, job_seconds=0.2, duplicate_records=mode,
                            max_job_duplicates=10**9, latency_ms=latency_ms)
    try:
        client = DataverseClient(handle.url, StaticTokenProvider("bench"))
        job = start_job(client)
        with tempfile.TemporaryDirectory() as tmp:
            run = RunFolder(Path(tmp) / "run")
            started = time.perf_counter()
            result = group_run(client, run, GroupSettings("contact", job, max_duplicates=None))
            elapsed = time.perf_counter() - started
            ids = [i for g in result.groups.groups for i in g.record_ids]
            meta = client.entity("contact")
            before = client.stats.requests
            t0 = time.perf_counter()
            download_records(client, meta, ids, _drop)
            download_s = time.perf_counter() - t0
            download_requests = client.stats.requests - before
            one_at_a_time = DataverseClient(handle.url, StaticTokenProvider("bench"), ClientSettings(read_workers=1))
            t0 = time.perf_counter()
            download_records(one_at_a_time, meta, ids, _drop)
            sequential_s = time.perf_counter() - t0
        return {"mode": mode, "records": len(ids), "download_requests": download_requests,
                "records_per_download_request": round(len(ids) / max(1, download_requests), 1),
                "download_records_per_s": round(len(ids) / download_s),
                "sequential_records_per_s": round(len(ids) / sequential_s),
                "group_step_requests": result.requests, "group_step_s": round(elapsed, 2),
                "group_step_records_per_s": round(len(ids) / elapsed)}
    finally:
        handle.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--latency-ms", type=float, default=100.0, help="added to every request (default 100)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rows = [measure(int(n), mode, args.latency_ms) for n in args.sizes.split(",") for mode in ("pairs", "base")]
    cols = list(rows[0])
    print("  ".join(f"{c:>14}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]!s:>14}" for c in cols))
    ok = all(r["records_per_download_request"] >= 50 for r in rows)
    print("target (>= 50 records per download request):", "met" if ok else "NOT met")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
