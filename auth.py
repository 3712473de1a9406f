"""Sign-in: a .env file -> a frozen Config -> a token provider (MSAL or a given token).

Reads the .env file with ``dotenv_values`` only (nothing is put into ``os.environ``). Tokens live in
MSAL's in-memory cache and nowhere else; no secret or token value ever appears in a message, a repr or
a log line. Nothing here prints: the device-code prompt goes to an injected ``on_message`` callback.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol
from urllib.parse import urlsplit

import msal
import requests
from dotenv import dotenv_values

from errors import AuthError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "51f81489-12ee-4a9e-aaae-a2591f45987d"
DEFAULT_AUTHORITY_BASE = "https://login.microsoftonline.com"
AUTH_MODES = ("interactive", "device_code", "client_secret", "access_token")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MSAL_TIMEOUT_S = 30.0

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")
_URI_EXAMPLE = "https://yourorg.crm11.dynamics.com/"


def find_env_files(folder: Path) -> list[Path]:
    """The .env files in ``folder``: ``.env`` first, then ``*.env`` by name (``.env.example`` never)."""
    folder = Path(folder)
    found = sorted(p for p in folder.glob("*.env") if p.is_file() and p.name != ".env")
    first = folder / ".env"
    return ([first] if first.is_file() else []) + found


def env_file_uri(path: Path) -> str:
    """The ENVIRONMENT_URI a .env file names, for showing which is which (never raises)."""
    try:
        uri = (dotenv_values(path, encoding="utf-8-sig", interpolate=False).get("ENVIRONMENT_URI") or "").strip()
    except (OSError, UnicodeDecodeError):
        uri = ""
    return uri or "no ENVIRONMENT_URI"


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything needed to sign in and reach one Dataverse environment. Secrets are kept out of repr."""

    env_file: Path
    client_id: str = DEFAULT_CLIENT_ID
    tenant_id: str = ""
    environment_uri: str
    authority_base: str = DEFAULT_AUTHORITY_BASE
    scope_suffix: str = "user_impersonation"
    auth_mode: str = "interactive"
    client_secret: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.environment_uri.endswith("/"):
            object.__setattr__(self, "environment_uri", self.environment_uri + "/")

    @property
    def authority(self) -> str:
        return f"{self.authority_base.rstrip('/')}/{self.tenant_id}"

    @property
    def scopes(self) -> list[str]:
        suffix = ".default" if self.auth_mode == "client_secret" else self.scope_suffix.lstrip("/")
        return [self.environment_uri + suffix]


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and check one .env file. CLIENT_SECRET / ACCESS_TOKEN may also come from ``environ`` (it wins)."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    values = _read_env_file(path)
    name = path.name

    def value(key: str, secret: bool = False) -> str:
        if secret and (environ.get(key) or "").strip():
            return environ[key].strip()
        return (values.get(key) or "").strip()

    mode = (value("AUTH_MODE") or "interactive").lower()
    if mode not in AUTH_MODES:
        raise ConfigError(f"AUTH_MODE in {name} must be one of {', '.join(AUTH_MODES)}, not '{value('AUTH_MODE')}'.")
    uri = _check_environment_uri(value("ENVIRONMENT_URI") or _missing("ENVIRONMENT_URI", name, values), name)
    client_id = value("CLIENT_ID") or DEFAULT_CLIENT_ID
    if not _GUID.match(client_id):
        raise ConfigError(f"CLIENT_ID in {name} must be a GUID like {DEFAULT_CLIENT_ID}, not '{client_id}'.")
    tenant = value("TENANT_ID")
    if mode != "access_token":
        tenant = tenant or _missing("TENANT_ID", name, values)
    if tenant and not (_GUID.match(tenant) or _DOMAIN.match(tenant) or tenant.lower() in ("organizations", "common")):
        raise ConfigError(
            f"TENANT_ID in {name} must be a directory GUID or a domain like contoso.onmicrosoft.com, not '{tenant}'."
        )
    authority_base = value("AUTHORITY_BASE") or DEFAULT_AUTHORITY_BASE
    parts = urlsplit(authority_base)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"AUTHORITY_BASE in {name} must be an https address like {DEFAULT_AUTHORITY_BASE}.")
    secret, token = value("CLIENT_SECRET", secret=True), value("ACCESS_TOKEN", secret=True)
    if mode == "client_secret" and not secret:
        raise ConfigError(_secret_missing("CLIENT_SECRET", mode, name))
    if mode == "access_token" and not token:
        raise ConfigError(_secret_missing("ACCESS_TOKEN", mode, name))
    if token and any(c.isspace() or not c.isprintable() for c in token):
        # requests would refuse the header and quote it in its error: say so here, without the value
        raise ConfigError(f"ACCESS_TOKEN (in {name} or the environment) contains spaces or line breaks.",
                          "Give the token on one line, without 'Bearer '.")
    return Config(
        env_file=path,
        client_id=client_id.lower(),
        tenant_id=tenant,
        environment_uri=uri,
        authority_base=authority_base.rstrip("/"),
        scope_suffix=value("SCOPE_SUFFIX").lstrip("/") or "user_impersonation",
        auth_mode=mode,
        client_secret=secret or None,
        access_token=token or None,
    )


def _read_env_file(path: Path) -> dict[str, str | None]:
    if not path.is_file():
        raise ConfigError(f"The settings file {path} does not exist.", "Copy .env.example to .env and fill it in.")
    try:  # utf-8-sig: Notepad adds a BOM; interpolate=False: a '$' in a secret stays a '$'
        return dotenv_values(path, encoding="utf-8-sig", interpolate=False)
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name} is not a UTF-8 text file.", "Save it as UTF-8 and try again.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror or exc}.") from None


def _missing(key: str, name: str, values: Mapping[str, str | None]) -> NoReturn:
    lower = [k for k in values if k.upper() == key and k != key]
    found = f" (found '{lower[0]}': names are upper-case)" if lower else ""
    example = {"ENVIRONMENT_URI": _URI_EXAMPLE, "TENANT_ID": "contoso.onmicrosoft.com"}.get(key, "...")
    raise ConfigError(f"{key} is missing in {name}{found}. Add a line like {key}={example}")


def _secret_missing(key: str, mode: str, name: str) -> str:
    return (
        f"{key} is missing: AUTH_MODE={mode} in {name} needs it. "
        f"Set the {key} environment variable (better) or add {key}=... to {name}."
    )


def _check_environment_uri(uri: str, name: str) -> str:
    """https (http only for a loopback emulator), a host, no query or fragment; returned with a trailing slash."""
    bad = f"ENVIRONMENT_URI in {name} must look like {_URI_EXAMPLE}"
    try:
        parts = urlsplit(uri)
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise ConfigError(f"{bad}, not '{uri}'.") from None
    if not host or parts.scheme not in ("https", "http"):
        raise ConfigError(f"{bad}, not '{uri}'.")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ConfigError(f"{bad}: http is allowed only for a local emulator (127.0.0.1, localhost), use https.")
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise ConfigError(f"{bad}: without '?...' or '#...' (copy only the address up to the first '/').")
    if parts.username or parts.password:
        raise ConfigError(f"{bad}: without a user name or password in it.")
    if "/api/data" in parts.path.lower():
        raise ConfigError(f"{bad}: the environment's address, without /api/data/...")
    if parts.path.strip("/"):
        root = f"{parts.scheme}://{parts.netloc}/"
        raise ConfigError(f"{bad}: the environment's address only, not a page in it ('{parts.path}').",
                          f"Use ENVIRONMENT_URI={root}")
    return uri if uri.endswith("/") else uri + "/"


class TokenProvider(Protocol):
    """Gives a bearer token for Dataverse; ``force_refresh`` asks for a new one (after a 401)."""

    def get_token(self, *, force_refresh: bool = False) -> str: ...


class StaticTokenProvider:
    """A token given up front (AUTH_MODE=access_token, the emulator, the demo). It cannot be renewed."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *, force_refresh: bool = False) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticTokenProvider(token=<hidden>)"


class MsalTokenProvider:
    """Tokens from an MSAL app; safe to call from many worker threads (one lock around MSAL)."""

    def __init__(
        self,
        app: Any,
        scopes: list[str],
        mode: str,
        *,
        on_message: Callable[[str], None] = lambda s: None,
        hint: str = "",
    ) -> None:
        self.app = app
        self.scopes = list(scopes)
        self.mode = mode
        self._on_message = on_message
        self._hint = hint
        self._lock = threading.Lock()

    def get_token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            try:
                result = self._acquire(force_refresh)
            except requests.exceptions.RequestException as exc:
                raise AuthError(f"Cannot reach the sign-in service: {type(exc).__name__}.", self._hint) from None
            return self._token_from(result)

    def _acquire(self, force_refresh: bool) -> dict[str, Any] | None:
        if self.mode == "client_secret":
            if force_refresh:  # acquire_token_for_client refuses force_refresh: drop the cached token instead
                self.app.remove_tokens_for_client()
            return self.app.acquire_token_for_client(self.scopes)
        accounts = self.app.get_accounts()
        if accounts:
            result = self.app.acquire_token_silent(self.scopes, account=accounts[0], force_refresh=force_refresh)
            if result:
                return result
            log.info("Silent token renewal failed; signing in again (%s)", self.mode)
        return self._sign_in()

    def _sign_in(self) -> dict[str, Any] | None:
        if self.mode == "interactive":
            return self.app.acquire_token_interactive(self.scopes)
        flow = self.app.initiate_device_flow(self.scopes)
        if "user_code" not in flow:
            return flow
        self._on_message(str(flow.get("message", "")))
        return self.app.acquire_token_by_device_flow(flow)

    def _token_from(self, result: dict[str, Any] | None) -> str:
        if result and "access_token" in result:
            return str(result["access_token"])
        result = result or {}
        error = str(result.get("error") or "no_token")
        description = " ".join(str(result.get("error_description") or "no token was returned").split())
        description = description.split(" Trace ID:")[0]  # Entra appends trace lines; keep the sentence
        raise AuthError(
            f"Sign-in failed ({error}): {description}",
            self._hint,
            error=error,
            correlation_id=str(result.get("correlation_id") or ""),
        )

    def __repr__(self) -> str:
        return f"MsalTokenProvider(mode={self.mode!r}, scopes={self.scopes!r})"


def make_token_provider(
    config: Config,
    *,
    on_message: Callable[[str], None] = lambda s: None,
    http_client: Any = None,
) -> TokenProvider:
    """The token provider for ``config.auth_mode``. ``http_client`` replaces MSAL's HTTP (tests)."""
    if config.auth_mode == "access_token":
        return StaticTokenProvider(config.access_token or "")
    hint = (
        f"Check TENANT_ID, CLIENT_ID and CLIENT_SECRET in {config.env_file.name} (or the environment)."
        if config.auth_mode == "client_secret"
        else f"Check TENANT_ID and CLIENT_ID in {config.env_file.name}, and that your account may sign in."
    )
    common: dict[str, Any] = {"authority": config.authority, "http_client": http_client, "timeout": MSAL_TIMEOUT_S}
    try:
        if config.auth_mode == "client_secret":
            app: Any = msal.ConfidentialClientApplication(
                config.client_id, client_credential=config.client_secret, **common
            )
        else:
            app = msal.PublicClientApplication(config.client_id, **common)
    except ValueError as exc:  # MSAL: unknown tenant / failed OpenID discovery
        detail = " ".join(str(exc).split())[:200]
        raise AuthError(f"Cannot use the sign-in authority {config.authority}: {detail}", hint) from None
    except requests.exceptions.RequestException as exc:
        raise AuthError(
            f"Cannot reach the sign-in service {config.authority_base}: {type(exc).__name__}.",
            "Check your network and AUTHORITY_BASE.",
        ) from None
    return MsalTokenProvider(app, config.scopes, config.auth_mode, on_message=on_message, hint=hint)
