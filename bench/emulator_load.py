"""Load benchmark of the Dataverse emulator: many client threads hammering reads and creates for a few seconds.

    python -m bench.emulator_load [--threads 50] [--seconds 5] [--limits 5,5000,60,52] [--web-servers 1]
                                  [--json PATH]

The emulator runs in its own process (`python -m dataverse_emulator`, as a user runs it), so the clients'
interpreter lock does not throttle it; `--in-process` runs it on a thread of this process instead.
Each thread has its own requests.Session (keep-alive, no cookies kept) and loops over a mix of operations:
GET one record by id, a `$filter` query with `Microsoft.Dynamics.CRM.In` over 20 ids, and a create. A 429 is
expected under the limits and honoured (the thread waits its Retry-After, capped by the time left). With
`--web-servers N` the emulator has N web servers, each enforcing the limits on its own; the clients drop the
affinity cookie, so they are spread over all of them and the request ceiling is N times one server's. Prints a
table (with the answers per web server); exits 1 if any answer other than a success or a 429 appeared, so it
doubles as a soak check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

from dataverse_emulator import start_emulator
from dataverse_emulator.options import Limits

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Tally:
    requests: int = 0
    ok: int = 0
    throttled: int = 0
    other_errors: int = 0
    errors_seen: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    per_server: dict[str, int] = field(default_factory=dict)  # answers per ARRAffinity value


def _one(session: requests.Session, api: str, ids: list[str], rng: random.Random) -> requests.Response:
    roll = rng.random()
    if roll < 0.5:
        return session.get(f"{api}contacts({rng.choice(ids)})?$select=fullname,emailaddress1", timeout=15)
    if roll < 0.7:
        chosen = ",".join(f"'{i}'" for i in rng.sample(ids, 20))
        flt = f"Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=[{chosen}])"
        return session.get(f"{api}contacts", params={"$select": "fullname", "$filter": flt}, timeout=15)
    return session.post(f"{api}contacts", json={"firstname": "Load", "lastname": f"Test {rng.random():.6f}"},
                        timeout=15)


def _worker(api: str, ids: list[str], deadline: float, seed: int, tally: Tally, lock: threading.Lock) -> None:
    rng = random.Random(seed)
    with requests.Session() as session:
        session.trust_env = False
        session.headers.update({"Authorization": "Bearer bench", "Accept": "application/json",
                                "OData-Version": "4.0", "OData-MaxVersion": "4.0"})
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                resp = _one(session, api, ids, rng)
                status, detail = resp.status_code, resp.text[:200]
            except requests.RequestException as exc:
                status, detail = -1, f"{type(exc).__name__}: {exc}"
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            server = session.cookies.get("ARRAffinity", "?")[:8] if status > 0 else "?"
            session.cookies.clear()  # no affinity cookie, as Microsoft recommends for throughput
            with lock:
                tally.requests += 1
                tally.per_server[server] = tally.per_server.get(server, 0) + 1
                tally.latencies_ms.append(elapsed_ms)
                if 200 <= status < 300:
                    tally.ok += 1
                elif status == 429:
                    tally.throttled += 1
                else:
                    tally.other_errors += 1
                    if len(tally.errors_seen) < 5:
                        tally.errors_seen.append(f"{status}: {detail}")
            if status == 429:
                time.sleep(max(0.0, min(float(resp.headers.get("Retry-After", "1")), deadline - time.monotonic())))


@contextlib.contextmanager
def emulator_url(limits: str, in_process: bool, web_servers: int = 1) -> Iterator[str]:
    """The API root of a fresh empty emulator with the given limits and web servers."""
    if in_process:
        with start_emulator("empty", limits=limits, web_servers=web_servers) as dv:
            yield dv.api_url
        return
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "dataverse_emulator", "--port", "0", "--dataset", "empty",
                             "--limits", limits, "--web-servers", str(web_servers)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("Dataverse emulator listening on "):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield line.rsplit(" ", 1)[1] + "api/data/v9.2/"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _seed(api: str, records: int) -> list[str]:
    """Create the contacts the readers use, 500 per $batch (so the limits are not spent on setup)."""
    ids: list[str] = []
    with requests.Session() as session:
        session.trust_env = False
        for start in range(0, records, 500):
            parts = []
            for i in range(start, min(records, start + 500)):
                rid = str(uuid.uuid4())
                ids.append(rid)
                body = json.dumps({"contactid": rid, "firstname": "Seed", "lastname": f"Contact {i}"})
                parts.append("--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                             f"POST contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{body}\r\n")
            headers = {"Authorization": "Bearer bench", "Content-Type": "multipart/mixed; boundary=b"}
            resp = session.post(api + "$batch", data="".join(parts) + "--b--\r\n", headers=headers, timeout=60)
            if resp.status_code != 200:
                raise RuntimeError(f"seeding failed: {resp.status_code} {resp.text[:300]}")
    return ids


def run(threads: int, seconds: float, limits: str, records: int, in_process: bool,
        web_servers: int = 1) -> dict[str, object]:
    with emulator_url(limits, in_process, web_servers) as api:
        ids = _seed(api, records)
        tally, lock = Tally(), threading.Lock()
        deadline = time.monotonic() + seconds
        workers = [threading.Thread(target=_worker, args=(api, ids, deadline, n, tally, lock))
                   for n in range(threads)]
        started = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.monotonic() - started
    lat = sorted(tally.latencies_ms) or [0.0]
    parsed = Limits.parse(limits)
    ceiling = web_servers * parsed.max_requests / parsed.window_s if parsed is not None else None
    return {
        "threads": threads, "seconds": round(wall, 2), "limits": limits, "in_process": in_process,
        "web_servers": web_servers, "request_ceiling_per_s": round(ceiling, 1) if ceiling is not None else None,
        **{k: v for k, v in asdict(tally).items() if k not in ("latencies_ms", "errors_seen")},
        "req_per_s": round(tally.requests / wall, 1), "ok_per_s": round(tally.ok / wall, 1),
        "p50_ms": round(statistics.median(lat), 2), "p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 2),
        "errors_seen": tally.errors_seen,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=50)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--limits", default="5,5000,60,52", help="W,R,E,C as for the emulator (default 5,5000,60,52)")
    p.add_argument("--records", type=int, default=2000, help="contacts in the store before the run")
    p.add_argument("--web-servers", type=int, default=1, help="web servers in the emulator (default 1)")
    p.add_argument("--in-process", action="store_true", help="run the emulator on a thread of this process")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    figures = run(args.threads, args.seconds, args.limits, args.records, args.in_process, args.web_servers)
    rows = [("threads", figures["threads"]), ("seconds", figures["seconds"]), ("limits", figures["limits"]),
            ("web servers", figures["web_servers"]), ("ceiling req/s", figures["request_ceiling_per_s"]),
            ("requests", figures["requests"]), ("ok", figures["ok"]), ("429", figures["throttled"]),
            ("other errors", figures["other_errors"]), ("req/s", figures["req_per_s"]),
            ("ok/s", figures["ok_per_s"]), ("p50 ms", figures["p50_ms"]), ("p95 ms", figures["p95_ms"])]
    print("emulator load benchmark")
    for name, value in rows:
        print(f"  {name:<14}{value:>12}")
    for server, count in sorted(figures["per_server"].items()):  # type: ignore[union-attr]
        print(f"  {'server ' + server:<14}{count:>12}")
    for err in figures["errors_seen"]:  # type: ignore[union-attr]
        print(f"  error: {err}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 1 if figures["other_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
