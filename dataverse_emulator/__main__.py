"""`python -m dataverse_emulator`: run the local Dataverse in the foreground until SIGINT or SIGTERM.

Prints exactly one line when ready: `Dataverse emulator listening on http://127.0.0.1:PORT/`. On a signal
it stops, saves `--state-file` when given, and exits 0. Bad option values are argparse errors (exit 2).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from . import build_options, start_emulator
from .options import EmulatorOptions, Faults, Limits

EPILOG = """\
--limits takes: off (no limits, the default) | realistic (300 s window, 6000 requests, 1200 s execution
  time, 52 concurrent: Dataverse's numbers) | W,R,E,C (window seconds, requests, execution seconds,
  concurrent), e.g. 10,200,40,52 for the real limits scaled to a 10 s window.

--web-servers N models an environment with N web servers over one database. Dataverse enforces the
  service protection limits per user per web server. A response sets the cookies ARRAffinity and
  ARRAffinitySameSite (64 hex digits naming the server); a request that sends either back goes to that
  server, one without goes to the next server in turn. So a client that drops the cookie gets N times one
  server's ceiling; one that keeps it gets one server's. Each response's x-ms-dop-hint and
  x-ms-ratelimit-* headers are those of the server that answered.

--faults takes a comma-separated list of:
  503=SHARE          answer that share of requests with 503 before processing them (Retry-After: 1)
  drop=SHARE         process that share of requests, then close the connection without answering
  slow=SHARE:SECONDS delay that share of requests by SECONDS before processing
  token-ttl=SECONDS  a bearer token is refused (401) SECONDS after it was first seen; a new one works
  marketing-plugin   Merge fails when the subordinate is a marketing list member (the plugin error)
  deny-merge=ID;ID   the caller lacks the privilege to merge these records (ids separated by ; or |)
  e.g. --faults "503=0.05,drop=0.01,slow=0.02:3,token-ttl=3600"

--dataset takes: demo | empty | synthetic:N (N contacts, for benchmarks) | synthetic-partitions:N (at
  least N contacts with duplicates in known groups - pairs, triples, chains - plus N/2 without: with
  N >= 15000 one detection job over "Active Contacts for Duplicate Checking" hits the 5,000 cap, so the
  view must be split into partitions by contactid or createdon ranges) | PATH.json (a saved state).
"""


def _dataset(value: str) -> str:
    if value in ("demo", "empty") or re.fullmatch(r"synthetic(-partitions)?:\d+", value):
        return value
    if value.endswith(".json"):
        if not Path(value).is_file():
            raise argparse.ArgumentTypeError(f"no such dataset file: {value}")
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not demo, empty, synthetic:N, synthetic-partitions:N or a .json "
                                     "file")


def _limits(value: str) -> Limits | None:
    try:
        return Limits.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("--limits takes", "takes")) from None


def _faults(value: str) -> Faults:
    try:
        return Faults.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return number


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return int(value)


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0-65535; 0 picks a free one)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dataverse_emulator", epilog=EPILOG,
                                description="A local Dataverse Web API (v9.2) for tests, demos and benchmarks.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="port (default 0: a free one)")
    p.add_argument("--dataset", type=_dataset, default="demo",
                   help="demo | empty | synthetic:N | synthetic-partitions:N | PATH.json")
    p.add_argument("--seed", type=int, default=1, help="seed for datasets and faults (default 1)")
    p.add_argument("--latency-ms", type=_non_negative, default=0.0, help="added to every request")
    p.add_argument("--merge-ms", type=_non_negative, default=0.0, help="server time of one Merge (execution time)")
    p.add_argument("--limits", type=_limits, default=None, help="off | realistic | W,R,E,C (see below)")
    p.add_argument("--web-servers", type=_positive, default=1, metavar="N",
                   help="web servers behind the load balancer, each enforcing --limits on its own (default 1)")
    p.add_argument("--organization", default="emulator", metavar="NAME",
                   help="the org's name; WhoAmI's OrganizationId derives from it, so two emulators can be two orgs")
    p.add_argument("--require-token", default=None, help="accept only this exact bearer token")
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate: serve https")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key for --tls-cert")
    p.add_argument("--faults", type=_faults, default=Faults(), help="injected failures (see below)")
    p.add_argument("--state-file", type=Path, default=None, help="load at start if present, save at exit")
    p.add_argument("--duplicate-records", choices=("base", "pairs"), default="base",
                   help="how detection jobs fill duplicaterecord (default base)")
    p.add_argument("--job-seconds", type=_non_negative, default=2.0, help="duration of a detection job")
    p.add_argument("--without-sales", action="store_true",
                   help="an org without Dynamics 365 Sales: merging an active quote's customer is not refused")
    p.add_argument("--async-cascade", type=_non_negative, default=None, metavar="SECONDS",
                   help="re-point the related rows of a large merge this many seconds after it answers")
    p.add_argument("--async-cascade-threshold", type=int, default=1000, metavar="ROWS",
                   help="a merge cascade is large above this many rows (default 1000, as Dataverse)")
    p.add_argument("--count-snapshot", type=_non_negative, default=86400.0, metavar="SECONDS",
                   help="RetrieveTotalRecordCount answers from a snapshot at most this old (default 86400; 0: live)")
    return p


def options_from_args(args: argparse.Namespace) -> EmulatorOptions:
    return build_options(
        args.dataset, host=args.host, port=args.port, seed=args.seed, latency_ms=args.latency_ms,
        merge_ms=args.merge_ms, limits=args.limits, require_token=args.require_token, tls_cert=args.tls_cert,
        tls_key=args.tls_key, faults=args.faults, state_file=args.state_file,
        duplicate_records=args.duplicate_records, job_seconds=args.job_seconds, web_servers=args.web_servers,
        organization=args.organization,
        sales=not args.without_sales, async_cascade_s=args.async_cascade,
        async_cascade_threshold=args.async_cascade_threshold, count_snapshot_s=args.count_snapshot,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    for path in (args.tls_cert, args.tls_key):
        if path is not None and not path.is_file():
            parser.error(f"no such file: {path}")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        handle = start_emulator(options_from_args(args))
    except (OSError, ValueError) as exc:
        print(f"dataverse_emulator: cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"Dataverse emulator listening on {handle.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
