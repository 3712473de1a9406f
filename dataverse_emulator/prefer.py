"""Request headers the Web API gives meaning to: `Prefer` and its preferences, annotations asked for, and the
`MSCRM.*`/conditional headers. What the emulator cannot honour is a 400 naming it, never silently ignored.

Honoured: `Prefer` with `odata.maxpagesize`, `odata.include-annotations` (patterns as the service reads them:
`*`, exact names, or a prefix ending in `*`), `return=representation|minimal`, `odata.continue-on-error`
(`$batch`); `MSCRM.SuppressDuplicateDetection: true|false`; `If-Match` (PATCH/DELETE), `If-None-Match`
(`*` on PATCH; an ETag on a single-record GET gives 304; `null`, which Microsoft's samples send, means none);
`Consistency: Strong` (the emulator is always consistent); `OData-Version`/`OData-MaxVersion` 4.0. Transport
headers (Accept, User-Agent, x-ms-client-request-id, ...) pass. Refused: any other preference, any other
`MSCRM.*` header, `CallerObjectId`/`MSCRMCallerID` (impersonation), `If-Modified-Since`, `If-Unmodified-Since`,
`If-Range`, `Range`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import bad_request
from .wire import ApiRequest

_PREFERENCE = re.compile(r'\s*([^=,\s]+)\s*(?:=\s*("[^"]*"|[^,]*))?\s*(?:,|$)')
PREFERENCES = ("odata.maxpagesize", "odata.include-annotations", "return", "odata.continue-on-error")
_MSCRM_ALLOWED = ("mscrm.suppressduplicatedetection",)
_REFUSED = ("callerobjectid", "mscrmcallerid", "if-modified-since", "if-unmodified-since", "if-range", "range")


def parse_prefer(header: str | None) -> dict[str, str]:
    """`Prefer: odata.maxpagesize=10, odata.include-annotations="a,b"` -> {name: value} (quotes removed)."""
    prefs: dict[str, str] = {}
    for m in _PREFERENCE.finditer(header or ""):
        if m.group(1):
            prefs[m.group(1).lower()] = (m.group(2) or "").strip().strip('"')
    return prefs


@dataclass(frozen=True)
class Annotations:
    """Which instance annotations a request asked for (`odata.include-annotations`)."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def from_prefs(cls, prefs: dict[str, str]) -> Annotations:
        value = prefs.get("odata.include-annotations", "")
        return cls(tuple(p.strip() for p in value.split(",") if p.strip()))

    def wants(self, name: str) -> bool:
        name = name.lstrip("@")
        for pattern in self.patterns:
            if pattern == "*" or pattern == name:
                return True
            if pattern.endswith("*") and name.startswith(pattern[:-1].rstrip(".")):
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self.patterns)


ALL = Annotations(("*",))
NONE = Annotations()


def applied(prefs: dict[str, str], *names: str) -> dict[str, str]:
    """The `Preference-Applied` header for the preferences that were honoured."""
    parts = []
    for name in names:
        if name in prefs:
            value = prefs[name]
            parts.append(f'{name}="{value}"' if name == "odata.include-annotations" else f"{name}={value}")
    return {"Preference-Applied": ",".join(parts)} if parts else {}


def check_headers(req: ApiRequest) -> None:
    """Refuse the headers and preferences the emulator does not honour (see the module docstring)."""
    for name, value in req.headers.items():
        low = name.lower()
        if low in _REFUSED or (low.startswith("mscrm") and low not in _MSCRM_ALLOWED):
            raise bad_request(f"The request header '{name}' is not supported by the Dataverse emulator.")
        if low == "mscrm.suppressduplicatedetection" and value.strip().lower() not in ("true", "false"):
            raise bad_request(f"MSCRM.SuppressDuplicateDetection must be true or false, not '{value}'.")
        if low in ("odata-version", "odata-maxversion") and not value.strip().startswith("4."):
            raise bad_request(f"{name}: {value} is not supported; the Web API speaks OData 4.0.")
        if low == "consistency" and value.strip().lower() != "strong":
            raise bad_request(f"Consistency: {value} is not supported by the emulator (Strong is).")
    for pref in parse_prefer(req.header("prefer")):
        if pref not in PREFERENCES:
            raise bad_request(f"The preference '{pref}' (Prefer header) is not supported by the Dataverse emulator.")
    ret = parse_prefer(req.header("prefer")).get("return")
    if ret is not None and ret not in ("representation", "minimal"):
        raise bad_request(f"Prefer: return={ret} is not supported (representation or minimal).")


def suppress_detection(req: ApiRequest) -> bool:
    """True unless the request sends `MSCRM.SuppressDuplicateDetection: false` (detection is off by default)."""
    return req.header("mscrm.suppressduplicatedetection").strip().lower() != "false"


def if_none_match(req: ApiRequest) -> str:
    """The If-None-Match value, with Microsoft's `null` (sent by its samples to defeat caching) as none."""
    value = req.header("if-none-match").strip()
    return "" if value.lower() == "null" else value
