"""Merge throughput against the emulator's service protection limits, scaled in time (issue 6).

    python bench/merge_throughput.py [--merges N] [--window 10] [--merge-ms 250] [--json PATH]

Starts an emulator (dataset empty, N contact pairs inserted straight into its store) with Dataverse's limits
over a shorter window (`Limits().scaled(window)`: the same requests/s, execution-seconds/s and 52 concurrent
requests), a server time per Merge, and runs step 4 twice: the adaptive pool (the default settings), and one
worker (the original one-at-a-time design) as the baseline.

How the rate is measured: a sliding window lets a run start with a whole window's budget at once, so
N / elapsed overstates what can be sustained. The figure compared with the ceiling is the number of merges
finished within the first k whole windows of the run divided by k windows (k = whole windows elapsed): no
client can beat the ceiling on that measure. Both figures are printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from merge_fixtures import make_run, seed_groups  # noqa: E402

import merge_duplicates as md  # noqa: E402
from auth import StaticTokenProvider  # noqa: E402
from dataverse import DataverseClient  # noqa: E402
from dataverse_emulator import start_emulator  # noqa: E402
from dataverse_emulator.options import Limits  # noqa: E402
from runfolder.journal import read_journal  # noqa: E402

try:
    from dataverse_emulator.limits import theoretical_ceiling
except ImportError:  # pragma: no cover - older emulator
    def theoretical_ceiling(limits: Limits | None, merge_ms: float, latency_ms: float) -> float:
        merge_s, latency_s = merge_ms / 1000, latency_ms / 1000
        assert limits is not None
        return min(limits.max_requests / limits.window_s, limits.max_exec_s / limits.window_s / merge_s,
                   limits.max_concurrent / (merge_s + latency_s))


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def measure(merges: int, window: float, merge_ms: float, latency_ms: float, workers: int | None,
            seed: int) -> dict[str, Any]:
    """One run of step 4 on a fresh emulator; its figures."""
    limits = Limits().scaled(window)
    handle = start_emulator("empty", seed=seed, limits=limits, merge_ms=merge_ms, latency_ms=latency_ms)
    try:
        planned = seed_groups(handle.store, merges, 1)
        with tempfile.TemporaryDirectory() as tmp:
            run = make_run(Path(tmp) / "run", planned)
            settings = md.MergeSettings(entity="contact", workers=workers)
            peak = 0

            def progress(p: md.Progress) -> None:
                nonlocal peak
                peak = max(peak, p.in_flight)

            with DataverseClient(handle.url, StaticTokenProvider("bench")) as client:
                t = time.monotonic()
                result = md.run(client, run, md.load_plan(run, settings), settings, on_progress=progress, seed=seed)
                elapsed = time.monotonic() - t
            events = read_journal(run.journal_path)
        return _figures(events, result, elapsed, window, peak, handle.store.counters.merge_success, len(planned))
    finally:
        handle.stop()


def _figures(events: list[dict[str, Any]], result: md.MergeResult, elapsed: float, window: float, peak: int,
             success: Any, planned: int) -> dict[str, Any]:
    start = min(_ts(e["ts"]) for e in events if e["event"] == "sending")
    done = sorted(_ts(e["finished"]) - start for e in events if e["event"] == "result" and e["status"] == "merged")
    span = done[-1] if done else 0.0
    whole = math.floor(span / window)
    sustained = sum(1 for t in done if t < whole * window) / (whole * window) if whole else len(done) / span
    return {
        "merged": result.merged, "failed": result.failed, "skipped": result.skipped,
        "merged_twice": sum(1 for n in success.values() if n > 1), "planned": planned,
        "elapsed_s": round(elapsed, 2), "merge_span_s": round(span, 2), "whole_windows": whole,
        "overall_per_s": round(len(done) / span, 2) if span else 0.0, "sustained_per_s": round(sustained, 2),
        "throttled": result.throttled, "requests": result.requests, "peak_in_flight": peak,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--merges", type=int, default=600, help="merges in the adaptive run (default 600)")
    ap.add_argument("--baseline-merges", type=int, default=80, help="merges in the one-worker run (default 80)")
    ap.add_argument("--window", type=float, default=10.0, help="the 300 s window scaled to this many seconds")
    ap.add_argument("--merge-ms", type=float, default=250.0, help="server time of one Merge (default 250)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="added to every request (default 0)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    limits = Limits().scaled(args.window)
    ceiling = theoretical_ceiling(limits, args.merge_ms, args.latency_ms)
    adaptive = measure(args.merges, args.window, args.merge_ms, args.latency_ms, None, args.seed)
    baseline = measure(min(args.baseline_merges, args.merges), args.window, args.merge_ms, args.latency_ms, 1,
                       args.seed)
    report = {
        "limits": {"window_s": limits.window_s, "max_requests": limits.max_requests,
                   "max_exec_s": limits.max_exec_s, "max_concurrent": limits.max_concurrent},
        "merge_ms": args.merge_ms, "latency_ms": args.latency_ms, "ceiling_per_s": round(ceiling, 2),
        "adaptive": adaptive, "sequential": baseline,
        "ratio_to_ceiling": round(adaptive["sustained_per_s"] / ceiling, 3),
        "speedup_vs_sequential": round(adaptive["sustained_per_s"] / baseline["sustained_per_s"], 2),
    }
    _print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    ok = (report["ratio_to_ceiling"] >= 0.9 and report["speedup_vs_sequential"] >= 3
          and adaptive["failed"] == 0 and adaptive["merged_twice"] == 0)
    return 0 if ok else 1


def _print(r: dict[str, Any]) -> None:
    lim = r["limits"]
    print(f"limits: {lim['max_requests']} requests / {lim['max_exec_s']:g} s execution per {lim['window_s']:g} s "
          f"window, {lim['max_concurrent']} concurrent; Merge {r['merge_ms']:g} ms server time, "
          f"latency {r['latency_ms']:g} ms")
    print(f"ceiling: {r['ceiling_per_s']:.2f} merges/s")
    head = f"{'run':<12}{'merges':>8}{'failed':>8}{'span s':>8}{'overall/s':>11}{'sustained/s':>13}" \
           f"{'% ceiling':>11}{'429s':>7}{'peak':>6}"
    print(head)
    print("-" * len(head))
    for name in ("adaptive", "sequential"):
        f = r[name]
        pct = 100 * f["sustained_per_s"] / r["ceiling_per_s"]
        print(f"{name:<12}{f['merged']:>8}{f['failed']:>8}{f['merge_span_s']:>8.1f}{f['overall_per_s']:>11.2f}"
              f"{f['sustained_per_s']:>13.2f}{pct:>10.1f}%{f['throttled']:>7}{f['peak_in_flight']:>6}")
    print(f"adaptive / ceiling: {100 * r['ratio_to_ceiling']:.1f}%   adaptive / sequential: "
          f"{r['speedup_vs_sequential']:.2f}x")
    if r["ratio_to_ceiling"] > 1:
        print("(above 100%: like Dataverse, the emulator adds a request's execution time when it finishes, so "
              "requests admitted just before the limit is reached run over it)")


if __name__ == "__main__":
    sys.exit(main())
