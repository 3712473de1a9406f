"""Benchmark of the pure steps: grouping (pairs/s, peak memory) and prepare (subordinates/s).

    python -m bench.pure_steps [--json PATH] [--quick]
    python -m bench.pure_steps --step-only --runs 5      # the whole of step 3, five times
    python -m bench.pure_steps --step-only --runs 5 --under /dev/shm   # the run folder on a RAM disk

Grouping: random duplicate pairs over a pool of twice as many ids (mostly pairs and small chains, like
real detection output), timed through `grouping.group_pairs`; peak memory from tracemalloc in a second,
separate run (tracemalloc slows Python down). networkx's connected_components on the same pairs is the
reference when networkx is installed (it is not a project dependency).
Prepare: synthetic contact-like records in groups of 2-4, through one `planning.Planner` (as step 3 runs them), the
audit rows and the CSV files written to a temp folder (group generation is not timed). Also reported:
the rate without writing files, and how fast the disk creates small files right now (the audit files'
floor: on a shared VM this swings between 1,000 and 30,000 files/s).
--quick uses small sizes (under ten seconds) for CI smoke runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataverse import AttributeMetadata, EntityMetadata
from dataverse.odata import FORMATTED as _F
from dataverse.odata import LOOKUP_TABLE as _L
from dataverse.odata import NAV_PROPERTY as _N
from dataverse_emulator.schema import SCHEMA
from planning.audit_files import AuditWriter, audit_csv_bytes, audit_table
from planning.grouping import group_pairs
from planning.planner import Planner, plan_all
from planning.preflight import PreflightData
from planning.targets import get_strategy
from prepare_duplicates import _create_merge_result, fields_to_ignore
from runfolder.state import Group

ROOT = Path(__file__).resolve().parent.parent
ENTITY_SETS = {name: e.set_name for name, e in SCHEMA.items()}


def _ids(n: int, rng: random.Random) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def random_pairs(n: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pool = _ids(2 * n, rng)
    return [(pool[rng.randrange(2 * n)], pool[rng.randrange(2 * n)]) for _ in range(n)]


def bench_grouping(size: int, with_networkx: bool) -> dict[str, Any]:
    pairs = random_pairs(size)
    start = time.perf_counter()
    groups = group_pairs(pairs)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    group_pairs(pairs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    row: dict[str, Any] = {"pairs": size, "seconds": round(seconds, 3), "pairs_per_s": round(size / seconds),
                           "groups": len(groups), "peak_mb": round(peak / 1e6, 1)}
    if with_networkx:
        row.update(_networkx(pairs))
    return row


def _networkx(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    try:
        import networkx as nx
    except ImportError:
        return {"networkx_seconds": None}
    start = time.perf_counter()
    graph = nx.Graph()
    graph.add_edges_from((a, b) for a, b in pairs if a != b)
    count = sum(1 for _ in nx.connected_components(graph))
    return {"networkx_seconds": round(time.perf_counter() - start, 3), "networkx_groups": count}


def contact_meta() -> EntityMetadata:
    e = SCHEMA["contact"]
    attrs = {a.name: AttributeMetadata(a.name, a.type, a.updatable, a.readable, a.attribute_of, a.targets)
             for a in e.attrs.values()}
    return EntityMetadata(e.name, e.set_name, e.primary_id, e.primary_name, e.object_type_code, attrs)


def synthetic_contact(rng: random.Random, record_id: str, day: int, account: str) -> dict[str, Any]:
    first, last = rng.choice(["Ann", "Bob", "Cai", "Dee"]), rng.choice(["Smith", "O'Neil", "Zoë", "Li"])
    row: dict[str, Any] = {
        "@odata.etag": 'W/"1"', "contactid": record_id, "firstname": first, "lastname": last,
        "fullname": f"{first} {last}", "emailaddress1": f"{first}.{last}{rng.randrange(3)}@example.com".lower(),
        "emailaddress2": None, "emailaddress3": None, "telephone1": f"+44 20 {rng.randrange(10**7):07d}",
        "telephone2": None, "mobilephone": rng.choice([None, "07700 900123"]), "jobtitle": rng.choice([None, "CEO"]),
        "address1_line1": rng.choice([None, "1 High St"]), "address1_city": rng.choice(["London", None]),
        "address1_postalcode": rng.choice(["SW1A 1AA", "E1 6AN", None]), "address1_country": "UK",
        "address2_line1": None, "donotemail": rng.random() < 0.2, "donotphone": False, "new_isvip": rng.random() < 0.1,
        "new_ismember": rng.random() < 0.5, "description": rng.choice([None, "=HYPERLINK(\"x\")", "notes"]),
        "createdon": f"2020-01-{day:02d}T10:00:00Z", "modifiedon": f"2024-02-{day:02d}T10:00:00Z",
        "statecode": 0, "statuscode": 1, "versionnumber": 1000 + day,
        "_ownerid_value": "11111111-1111-1111-1111-111111111111", "_ownerid_value" + _F: "Admin",
        "_parentcustomerid_value": account,
    }
    row["_parentcustomerid_value" + _L] = "account"
    row["_parentcustomerid_value" + _N] = "parentcustomerid_account"
    row["_parentcustomerid_value" + _F] = "Contoso"
    return row


def _groups(subordinates: int, rng: random.Random, accounts: list[str]) -> Iterator[list[dict[str, Any]]]:
    """Synthetic groups of 2-4 contacts, `subordinates` subordinates in all."""
    done = 0
    while done < subordinates:
        size = min(rng.choice([2, 2, 3, 2, 4]), subordinates - done + 1)
        yield [synthetic_contact(rng, i, rng.randrange(1, 28), rng.choice(accounts)) for i in _ids(size, rng)]
        done += size - 1


def bench_prepare(subordinates: int, seed: int = 2, under: str | None = None) -> dict[str, Any]:
    """Subordinates/s through step 3's planning loop (`planning.planner.plan_all` with the step's
    `AuditWriter`) with the audit files written to a temp folder (in `under`, default the system's temp
    folder); also the planning alone, without the disk. Making the records is not timed."""
    rng = random.Random(seed)
    meta, checks, strategy = contact_meta(), PreflightData(), get_strategy("oldest_record")
    accounts = _ids(50, rng)
    first = [meta.primary_id, meta.primary_name]
    planner = Planner(meta, _create_merge_result, fields_to_ignore, ENTITY_SETS, checks)
    records: dict[str, dict[str, Any]] = {}
    groups = []
    for group in _groups(subordinates, rng, accounts):
        records.update((r["contactid"], r) for r in group)
        ids = tuple(r["contactid"] for r in group)
        groups.append(Group(min(ids), ids))
    out = Path(tempfile.mkdtemp(prefix="bench_prepare_", dir=under))
    try:
        start = time.perf_counter()
        with AuditWriter(out / "audit_records", first) as audit:
            done = len(plan_all(planner, groups, records, strategy, audit))
        timed = time.perf_counter() - start
        files_per_s = _file_create_rate(out / "probe")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    sample, cpu = max(1000, subordinates // 10), 0.0
    for group in _groups(sample, rng, accounts):
        start = time.perf_counter()
        for rows in planner.plan(group[0]["contactid"], group, strategy)[1]:
            audit_csv_bytes(*audit_table(rows, first))
        cpu += time.perf_counter() - start
    return {"subordinates": done, "seconds": round(timed, 3), "subordinates_per_s": round(done / timed),
            "no_disk_subordinates_per_s": round(sample / cpu), "disk_file_creates_per_s": files_per_s}


def bench_prepare_step(subordinates: int, seed: int = 4, under: str | None = None) -> dict[str, Any]:
    """The whole of step 3 (`prepare_duplicates.run`) on a run folder of synthetic contacts, against an
    emulator process for its metadata and pre-flight reads: read every record file, gather, plan, write the audit
    files and merges.csv. Run in a child process, so its peak memory (ru_maxrss) is the step's own. `under`:
    the folder the run folder is made in (default: the system's temp folder)."""
    out = subprocess.run([sys.executable, "-m", "bench.pure_steps", "--step-child", str(subordinates), str(seed),
                          *(["--under", under] if under else [])],
                         capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"the prepare step run failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _step_child(subordinates: int, seed: int, under: str | None = None) -> dict[str, Any]:
    from auth import StaticTokenProvider
    from dataverse import DataverseClient
    from planning.step import PrepareSettings
    from prepare_duplicates import run as prepare_run
    from runfolder.folder import RunFolder
    from runfolder.state import DuplicateGroups, Group

    rng = random.Random(seed)
    accounts = _ids(50, rng)
    base = Path(tempfile.mkdtemp(prefix="bench_step_", dir=under))
    # the emulator in its own process, as Dataverse is: this one stays single-threaded, like the tool
    server = subprocess.Popen([sys.executable, "-m", "dataverse_emulator", "--dataset", "empty"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = (server.stdout.readline() if server.stdout else "").split()[-1]
        run = RunFolder(base / "run")
        run.record_data_dir.mkdir(parents=True)
        groups, records = [], 0
        empty = {(f"_{a.name}_value" if a.targets else a.name): None for a in SCHEMA["contact"].attrs.values()}
        for group in _groups(subordinates, rng, accounts):  # plain writes: setting up is not measured
            for record in group:  # as step 2 writes them: every column, null when empty
                (run.record_data_dir / f"{record['contactid']}.json").write_text(json.dumps({**empty, **record}),
                                                                                 "utf-8")
            ids = tuple(r["contactid"] for r in group)
            groups.append(Group(min(ids), ids))
            records += len(ids)
        run.write_duplicate_groups(DuplicateGroups(job_id="bench", entity="contact", pairs_read=records,
                                                   groups=groups))
        client = DataverseClient(url, StaticTokenProvider("bench"))
        creates_per_s = _file_create_rate(base / "disk_check")  # the disk's rate just before the step
        # step 2 wrote the record files long before step 3 runs: flush this setup's writes (and the last run's
        # deletions) now, or the disk's write-back of them slows the measured step's file creation
        if hasattr(os, "sync"):
            os.sync()
        rss_before = _peak_kb()
        start = time.perf_counter()
        result = prepare_run(client, run, PrepareSettings("contact"))
        seconds = time.perf_counter() - start
        return {"subordinates": result.merges, "records": records, "seconds": round(seconds, 2),
                "subordinates_per_s": round(result.merges / seconds), "requests": client.stats.requests,
                "peak_rss_mb": round(_peak_kb() / 1024), "rss_before_mb": round(rss_before / 1024),
                "disk_file_creates_per_s": creates_per_s, "folder": str(base.parent)}
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def _peak_kb() -> int:
    """This process's peak resident memory in KB: VmHWM on Linux (ru_maxrss there keeps the parent's peak
    across fork and exec), else ru_maxrss (KB on Linux, bytes on macOS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _file_create_rate(folder: Path, count: int = 2000) -> int:
    """How fast this disk creates small files right now (the audit files' floor), for reading the figures."""
    folder.mkdir()
    data = b"x" * 1500
    start = time.perf_counter()
    for i in range(count):
        (folder / f"{i}.csv").write_bytes(data)
    return round(count / (time.perf_counter() - start))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--step-only", action="store_true", help="only the whole of step 3 (20,000 subordinates)")
    parser.add_argument("--runs", type=int, default=1, help="with --step-only: how many times")
    parser.add_argument("--under", help="with --step-only: make the run folder in this folder (e.g. a RAM disk)")
    parser.add_argument("--step-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step_child:
        print(json.dumps(_step_child(*args.step_child, under=args.under)))
        return 0
    if args.step_only:
        runs = [bench_prepare_step(2_000 if args.quick else 20_000, seed=4 + n, under=args.under)
                for n in range(args.runs)]
        for r in runs:
            print(f"prepare step end to end: {r['subordinates']:,} subordinates in {r['seconds']:.2f} s = "
                  f"{r['subordinates_per_s']:,}/s, {r['requests']} requests, peak memory {r['peak_rss_mb']} MB "
                  f"(run folder in {r['folder']}, which created {r['disk_file_creates_per_s']:,} small files/s "
                  "just before)")
        if args.json:
            args.json.write_text(json.dumps({"prepare_step_runs": runs}, indent=2) + "\n", encoding="utf-8")
        return 0
    sizes = [10_000, 50_000] if args.quick else [10_000, 100_000, 1_000_000]
    grouping = [bench_grouping(n, with_networkx=True) for n in sizes]
    prepare = bench_prepare(3_000 if args.quick else 100_000)
    ram = Path("/dev/shm")
    in_ram = bench_prepare(3_000 if args.quick else 100_000, under=str(ram)) if ram.is_dir() else None
    step = bench_prepare_step(2_000 if args.quick else 20_000)
    print(f"{'pairs':>10} {'seconds':>8} {'pairs/s':>10} {'groups':>8} {'peak MB':>8} {'networkx s':>10}")
    for r in grouping:
        nx_s = r.get("networkx_seconds")
        print(f"{r['pairs']:>10,} {r['seconds']:>8.2f} {r['pairs_per_s']:>10,} {r['groups']:>8,} "
              f"{r['peak_mb']:>8.1f} {nx_s if nx_s is not None else '-':>10}")
    print(f"prepare: {prepare['subordinates']:,} subordinates in {prepare['seconds']:.2f} s = "
          f"{prepare['subordinates_per_s']:,} subordinates/s (plan + audit rows + CSV files); "
          f"{prepare['no_disk_subordinates_per_s']:,}/s without writing; "
          f"this disk creates {prepare['disk_file_creates_per_s']:,} small files/s")
    if in_ram:
        print(f"prepare, audit files on a RAM disk ({ram}): {in_ram['subordinates_per_s']:,} subordinates/s "
              f"(it creates {in_ram['disk_file_creates_per_s']:,} small files/s)")
    print(f"prepare step end to end (prepare_duplicates.run: {step['records']:,} record files read, pre-flight "
          f"reads from the emulator, audit files, merges.csv): {step['subordinates']:,} subordinates in "
          f"{step['seconds']:.2f} s = {step['subordinates_per_s']:,}/s, {step['requests']} requests, "
          f"peak memory {step['peak_rss_mb']} MB")
    if args.json:
        figures = {"grouping": grouping, "prepare": prepare, "prepare_ram_disk": in_ram, "prepare_step": step}
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
