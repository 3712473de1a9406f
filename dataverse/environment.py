"""Which Dataverse environment a client talks to: its address and its organization id (WhoAmI).

A run folder belongs to one environment (DESIGN.md section 5): step 2 and step 3 record it, step 4 and undo
refuse a folder prepared against another. The address alone is not enough (an environment can be reached by
more than one name, and a copied sandbox keeps none of the records), so the organization id decides when
both sides have it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"https": 443, "http": 80}


def normalize_uri(uri: str) -> str:
    """`HTTPS://Contoso.crm.dynamics.com:443` -> `https://contoso.crm.dynamics.com/` (scheme and host in lower
    case, the default port dropped, one trailing slash)."""
    parts = urlsplit(uri.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    path = parts.path.rstrip("/")
    return f"{scheme}://{netloc}{path}/"


@dataclass(frozen=True)
class Environment:
    """A Dataverse environment as a run folder records it."""

    uri: str
    organization_id: str = ""

    def same_as(self, other: Environment) -> bool:
        """The same environment: the same organization id when both are known, else the same address."""
        if self.organization_id and other.organization_id:
            return self.organization_id.lower() == other.organization_id.lower()
        return normalize_uri(self.uri) == normalize_uri(other.uri)

    def describe(self) -> str:
        return f"{self.uri} (organization {self.organization_id})" if self.organization_id else self.uri

    def to_json(self) -> dict[str, str]:
        return {"uri": self.uri, "organization_id": self.organization_id}

    @classmethod
    def from_json(cls, data: Any) -> Environment | None:
        """None for a file written before environments were recorded (or a damaged entry)."""
        if not isinstance(data, dict) or not isinstance(data.get("uri"), str):
            return None
        return cls(normalize_uri(data["uri"]), str(data.get("organization_id") or "").lower())
