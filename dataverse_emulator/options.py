"""Emulator settings: limits, faults and timings, and the parsers for their command-line spellings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

ORG_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "dataverse-emulator/organization"))


@dataclass(frozen=True)
class Limits:
    """Service protection limits per user over a sliding window (Dataverse: 300 s, 6000, 1200 s, 52)."""

    window_s: float = 300.0
    max_requests: int = 6000
    max_exec_s: float = 1200.0
    max_concurrent: int = 52

    @classmethod
    def parse(cls, spec: str) -> Limits | None:
        """`off` -> None, `realistic` -> the real numbers, `W,R,E,C` -> window s, requests, exec s, concurrent."""
        spec = spec.strip().lower()
        if spec in ("off", "none", ""):
            return None
        if spec == "realistic":
            return cls()
        parts = spec.split(",")
        if len(parts) != 4:
            raise ValueError("--limits takes off, realistic, or W,R,E,C (e.g. 10,200,40,52)")
        w, r, e, c = parts
        return cls(float(w), int(r), float(e), int(c))

    def scaled(self, window_s: float) -> Limits:
        """The same limits over a shorter window (requests and execution time scale with it)."""
        f = window_s / self.window_s
        return Limits(window_s, max(1, round(self.max_requests * f)), self.max_exec_s * f, self.max_concurrent)


@dataclass(frozen=True)
class Faults:
    """Injected failures. Shares are probabilities per request, drawn from a seeded generator."""

    error_503: float = 0.0                     # `503=0.05`: answer 503 before processing
    drop: float = 0.0                          # `drop=0.02`: process, then close the connection unanswered
    token_ttl: float | None = None             # `token-ttl=120`: a token older than N s gets 401
    slow: tuple[float, float] | None = None    # `slow=0.05:3`: share of requests delayed N seconds
    marketing_plugin: bool = False             # `marketing-plugin`: Merge fails for list members
    deny_merge: frozenset[str] = field(default_factory=frozenset)  # `deny-merge=ID,...`: no privilege

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Parse `503=0.05,drop=0.02,token-ttl=120,slow=0.05:3,marketing-plugin,deny-merge=ID;ID`.

        Ids in deny-merge are separated by `;` or `|` (a comma starts the next fault); a bare id list
        after deny-merge= up to the next known key is also accepted.
        """
        kw: dict[str, object] = {}
        deny: set[str] = set()
        known = ("503", "drop", "token-ttl", "slow", "marketing-plugin", "deny-merge")
        current: str | None = None
        for raw in (p.strip() for p in spec.split(",") if p.strip()):
            key, _, value = raw.partition("=")
            key = key.strip().lower()
            if key not in known and current == "deny-merge":
                deny.add(raw.lower())
                continue
            current = key
            if key == "503":
                kw["error_503"] = float(value)
            elif key == "drop":
                kw["drop"] = float(value)
            elif key == "token-ttl":
                kw["token_ttl"] = float(value)
            elif key == "slow":
                share, _, secs = value.partition(":")
                kw["slow"] = (float(share), float(secs or 1))
            elif key == "marketing-plugin":
                kw["marketing_plugin"] = True
            elif key == "deny-merge":
                deny.update(v.strip().lower() for v in value.replace("|", ";").split(";") if v.strip())
            else:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(known)}")
        return cls(deny_merge=frozenset(deny), **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EmulatorOptions:
    host: str = "127.0.0.1"
    port: int = 0
    dataset: str = "demo"             # demo | empty | synthetic:N | PATH.json
    seed: int = 1
    latency_ms: float = 0.0           # added to every request
    merge_ms: float = 0.0             # server time of one Merge (counts as execution time)
    limits: Limits | None = None      # None = no service protection limits
    require_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    faults: Faults = field(default_factory=Faults)
    state_file: Path | None = None
    duplicate_records: str = "base"   # base | pairs: how a detection job fills duplicaterecord
    job_seconds: float = 2.0          # how long a detection job takes from Waiting to Succeeded
    max_page_size: int = 5000
    dop_hint: int = 8                 # x-ms-dop-hint sent on responses
    max_job_duplicates: int = 5000    # the service's cap per detection job
    sales: bool = True                # Dynamics 365 Sales installed (its plug-in refuses merging active quotes)
    async_cascade_s: float | None = None   # defer large merge cascades this many seconds (None: never)
    async_cascade_threshold: int = 1000    # "large": more related rows than this move
    count_snapshot_s: float = 86400.0      # RetrieveTotalRecordCount answers from a snapshot this old at most (0: live)
    web_servers: int = 1              # web servers behind the load balancer, each with its own limits
    organization: str = "emulator"    # the org's name: WhoAmI's OrganizationId is derived from it (two orgs differ)

    @property
    def organization_id(self) -> str:
        if self.organization == "emulator":
            return ORG_ID   # the id every emulator had before organizations could be told apart
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/organization/{self.organization}"))

    def __post_init__(self) -> None:
        if self.web_servers < 1:
            raise ValueError(f"web_servers must be at least 1, not {self.web_servers}")
