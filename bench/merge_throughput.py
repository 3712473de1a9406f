"""Merge throughput against the emulator's service protection limits, scaled in time (issues 6, 14, 16).

    python -m bench.merge_throughput [--merges N] [--window 10] [--merge-ms 250] [--latency-ms 0]
                                     [--web-servers N] [--workers N] [--batch-size N] [--no-snapshots]
                                     [--compare snapshots,batch,cookie,sequential] [--json PATH]

Run from the repository root. An emulator in its own process (as Dataverse is: the figures are the tool's,
not the emulator's CPU shared with it), dataset empty, N contact pairs inserted straight into its store,
Dataverse's limits over a shorter window (`Limits().scaled(window)`: the same requests/s, execution-seconds/s
and 52 concurrent requests, per web server), a server time per Merge; then step 4 through its real entry
points (`merge_duplicates.load` and `run`, the default settings unless a flag says otherwise) on a fresh
emulator per run:
- `tool`: the default settings (the cookie dropped, so requests spread over every web server);
- `cookie`: the same, with a session that keeps the `ARRAffinity` cookie (one web server does all the work);
- `no snapshots`: without the undo snapshot (issue 14: the snapshot may cost at most 15% at the ceiling);
- `batch N` / `single`: merges in `$batch` requests of N change sets, or one request per merge (issue 16.4);
- `sequential`: one worker (the original one-at-a-time design), fewer merges.

The ceiling is the tightest of the three limits for single Merge requests, times the web servers the run can
use. How the rate is measured: a sliding window lets a run start with a whole window's budget at once, so
N / elapsed overstates what can be sustained. The figure compared with the ceiling is the number of merges
finished within the first k whole windows of the run divided by k windows (k = whole windows elapsed): no
client sending one Merge per request can beat the ceiling on that measure. Both figures are printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import merge_duplicates as md
from auth import StaticTokenProvider
from dataverse import DataverseClient
from dataverse_emulator.limits import theoretical_ceiling
from dataverse_emulator.options import Limits
from runfolder.journal import read_journal
from tests.merge_fixtures import Planned, make_run

COMPARISONS = ("snapshots", "batch", "cookie", "sequential")


@dataclass(frozen=True)
class Config:
    """One run: its name, the step 4 settings it changes, and whether its client keeps the affinity cookie."""

    name: str
    merges: int
    settings: dict[str, Any] = field(default_factory=dict)
    keep_cookie: bool = False


@dataclass(frozen=True)
class Setup:
    """What every run shares: the emulator's limits and timings."""

    window: float
    merge_ms: float
    latency_ms: float
    web_servers: int
    seed: int

    @property
    def limits(self) -> Limits:
        return Limits().scaled(self.window)

    def ceiling(self, servers: int) -> float:
        """Merges/s the limits allow one user sending one Merge per request, over `servers` web servers."""
        return servers * theoretical_ceiling(self.limits, self.merge_ms, self.latency_ms)


def _serve(setup: Setup, merges: int, conn: Connection) -> None:
    """The child process: an emulator with `merges` pairs seeded; answers the plan, serves until told to stop,
    then answers what its store counted."""
    from dataverse_emulator import start_emulator
    from tests.merge_fixtures import seed_groups

    handle = start_emulator("empty", seed=setup.seed, limits=setup.limits, merge_ms=setup.merge_ms,
                            latency_ms=setup.latency_ms, web_servers=setup.web_servers)
    conn.send((handle.url, seed_groups(handle.store, merges, 1)))
    conn.recv()
    counters = handle.store.counters
    served = Counter(e.web_server for e in counters.requests if e.status < 400)
    conn.send({"merged_twice": sum(1 for n in counters.merge_success.values() if n > 1),
               "merged_on_server": sum(1 for n in counters.merge_success.values() if n == 1),
               "throttled_by_server": counters.throttled, "served_by": dict(sorted(served.items())),
               "emulator_cpu_s": round(time.process_time(), 2)})
    handle.stop()


@contextmanager
def emulator_process(setup: Setup, merges: int) -> Iterator[tuple[str, list[Planned], Connection]]:
    """An emulator in a spawned process (no fork with connections open): its URL, the plan, the pipe."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(setup, merges, child), daemon=True)
    proc.start()
    try:
        url, planned = parent.recv()
        yield url, planned, parent
    finally:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.terminate()


def measure(setup: Setup, config: Config) -> dict[str, Any]:
    """One run of step 4 on a fresh emulator; its figures."""
    with emulator_process(setup, config.merges) as (url, planned, pipe), \
            tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "run", url, planned)
        settings = md.MergeSettings(entity="contact", **config.settings)
        peak = 0
        timeline: list[tuple[float, int, int, int, int]] = []

        def progress(p: md.Progress) -> None:
            nonlocal peak
            peak = max(peak, p.in_flight)
            timeline.append((round(p.elapsed_s, 2), p.done, p.concurrency, p.in_flight, p.throttled))

        with DataverseClient(url, StaticTokenProvider("bench")) as client:
            if config.keep_cookie:
                client.keep_affinity()
            plan = md.load(client, run, settings)
            t, cpu = time.monotonic(), time.process_time()
            result = md.run(client, run, plan, settings, on_progress=progress, seed=setup.seed)
            elapsed, cpu = time.monotonic() - t, time.process_time() - cpu
            requests, request_429s = client.stats.requests, client.stats.throttled_requests
        events = read_journal(run.journal_path)
        pipe.send("stop")
        server = pipe.recv()
    figures = _figures(events, result, elapsed, setup.window, peak, len(planned))
    figures.update(server, requests=requests, request_429s=request_429s, batches=result.batches,
                   batched=result.batched, name=config.name, tool_cpu_s=round(cpu, 2),
                   ceiling_per_s=round(setup.ceiling(1 if config.keep_cookie else setup.web_servers), 2))
    figures["ratio_to_ceiling"] = round(figures["sustained_per_s"] / figures["ceiling_per_s"], 3)
    figures["timeline"] = timeline  # (s, done, concurrency limit, in flight, 429s so far) every half second
    return figures


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _figures(events: list[dict[str, Any]], result: md.MergeResult, elapsed: float, window: float, peak: int,
             planned: int) -> dict[str, Any]:
    start = min(_ts(e["ts"]) for e in events if e["event"] == "sending")
    done = sorted(_ts(e["finished"]) - start for e in events if e["event"] == "result" and e["status"] == "merged")
    span = done[-1] if done else 0.0
    whole = math.floor(span / window)
    sustained = sum(1 for t in done if t < whole * window) / (whole * window) if whole else len(done) / span
    return {
        "merged": result.merged, "failed": result.failed, "skipped": result.skipped, "planned": planned,
        "elapsed_s": round(elapsed, 2), "merge_span_s": round(span, 2), "whole_windows": whole,
        "overall_per_s": round(len(done) / span, 2) if span else 0.0, "sustained_per_s": round(sustained, 2),
        "throttled": result.throttled, "peak_in_flight": peak,
    }


def configs(args: argparse.Namespace, setup: Setup) -> list[Config]:
    """The runs the flags ask for: the tool's default first, then the comparisons."""
    default = max(200, round(setup.ceiling(setup.web_servers) * setup.window * 3.5))  # 3.5 windows at the ceiling
    merges = args.merges or default
    base: dict[str, Any] = {"workers": args.workers}
    if args.no_snapshots:
        base["snapshots"] = False
    if args.batch_size is not None:
        base["batch_size"] = args.batch_size
    runs = [Config("tool", merges, base)]
    compare = [c for c in (args.compare.split(",") if args.compare else ()) if c]
    unknown = set(compare) - set(COMPARISONS)
    if unknown:
        raise SystemExit(f"--compare takes {', '.join(COMPARISONS)}, not {', '.join(sorted(unknown))}")
    if "snapshots" in compare:
        runs.append(Config("no snapshots" if not args.no_snapshots else "snapshots", merges,
                           {**base, "snapshots": args.no_snapshots}))
    if "batch" in compare:  # against one request per merge (or, when that is the tool run, batches)
        other = (args.batch_size_compare or 10) if args.batch_size == 1 else 1
        runs.append(Config("single" if other == 1 else f"batch {other}", min(merges, default) if other == 1 else merges,
                           {**base, "batch_size": other}))
    if "cookie" in compare:
        one = max(200, round(setup.ceiling(1) * setup.window * 3.5))
        runs.append(Config("cookie", min(merges, one), base, keep_cookie=True))
    if "sequential" in compare:
        runs.append(Config("sequential", min(args.baseline_merges, merges), {**base, "workers": 1}))
    return [replace(c, settings={k: v for k, v in c.settings.items() if v is not None}) for c in runs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--merges", type=int, help="merges per run (default: about 3.5 windows at the ceiling)")
    ap.add_argument("--baseline-merges", type=int, default=80, help="merges in the one-worker run (default 80)")
    ap.add_argument("--window", type=float, default=10.0, help="the 300 s window scaled to this many seconds")
    ap.add_argument("--merge-ms", type=float, default=250.0, help="server time of one Merge (default 250)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="added to every request (default 0)")
    ap.add_argument("--web-servers", type=int, default=1, help="web servers, each with its own limits (default 1)")
    ap.add_argument("--workers", type=int, help="step 4's --workers (default: the tool's)")
    ap.add_argument("--batch-size", type=int, help="merges per $batch request (default: the tool's)")
    ap.add_argument("--batch-size-compare", type=int,
                    help="with --batch-size 1, the batch size of --compare batch (default 10)")
    ap.add_argument("--no-snapshots", action="store_true", help="step 4 without its undo snapshots")
    ap.add_argument("--compare", default="sequential",
                    help=f"comma-separated extra runs: {', '.join(COMPARISONS)} (default sequential; '' for none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    setup = Setup(args.window, args.merge_ms, args.latency_ms, args.web_servers, args.seed)
    runs = [measure(setup, c) for c in configs(args, setup)]
    lim = setup.limits
    report = {"limits": {"window_s": lim.window_s, "max_requests": lim.max_requests, "max_exec_s": lim.max_exec_s,
                         "max_concurrent": lim.max_concurrent},
              "merge_ms": args.merge_ms, "latency_ms": args.latency_ms, "web_servers": args.web_servers,
              "ceiling_one_server_per_s": round(setup.ceiling(1), 2), "runs": runs}
    _print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tool = runs[0]
    ok = tool["ratio_to_ceiling"] >= 0.9 and tool["failed"] == 0 and tool["merged_twice"] == 0
    return 0 if ok else 1


def _print(r: dict[str, Any]) -> None:
    lim = r["limits"]
    print(f"limits per web server: {lim['max_requests']} requests / {lim['max_exec_s']:g} s execution per "
          f"{lim['window_s']:g} s window, {lim['max_concurrent']} concurrent; {r['web_servers']} web server(s); "
          f"Merge {r['merge_ms']:g} ms server time, latency {r['latency_ms']:g} ms")
    print(f"ceiling: {r['ceiling_one_server_per_s']:.2f} merges/s per web server")
    head = f"{'run':<14}{'merges':>8}{'failed':>8}{'twice':>7}{'span s':>8}{'overall/s':>11}{'sustained/s':>13}" \
           f"{'ceiling/s':>11}{'% ceiling':>11}{'429s':>7}{'requests':>10}{'peak':>6}{'cpu %':>7}"
    print(head)
    print("-" * len(head))
    for f in r["runs"]:
        print(f"{f['name']:<14}{f['merged']:>8}{f['failed']:>8}{f['merged_twice']:>7}{f['merge_span_s']:>8.1f}"
              f"{f['overall_per_s']:>11.2f}{f['sustained_per_s']:>13.2f}{f['ceiling_per_s']:>11.2f}"
              f"{100 * f['ratio_to_ceiling']:>10.1f}%{f['throttled']:>7}{f['requests']:>10}{f['peak_in_flight']:>6}"
              f"{100 * f['tool_cpu_s'] / f['elapsed_s']:>7.0f}")
    tool = r["runs"][0]
    for f in r["runs"][1:]:
        print(f"{tool['name']} / {f['name']}: {tool['sustained_per_s'] / max(1e-9, f['sustained_per_s']):.2f}x")
    if any(f["ratio_to_ceiling"] > 1 for f in r["runs"]):
        print("(above 100%: like Dataverse, the emulator adds a request's execution time when it finishes, so "
              "requests admitted just before the limit is reached run over it; a $batch counts once against the "
              "request limit, so batches can pass the ceiling of single requests where that limit binds)")


if __name__ == "__main__":
    sys.exit(main())
