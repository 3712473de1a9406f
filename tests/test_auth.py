"""auth.py: .env loading and validation, and each sign-in mode against a fake identity provider (offline)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from auth import (
    DEFAULT_CLIENT_ID,
    Config,
    MsalTokenProvider,
    StaticTokenProvider,
    find_env_files,
    load_config,
    make_token_provider,
)
from errors import AuthError, ConfigError

TENANT = "contoso.onmicrosoft.com"
TENANT_GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ORG = "https://contoso.crm11.dynamics.com/"
SECRET = "s3cr3t-$HOME-value"
# -- a fake Microsoft Entra: OpenID discovery, instance discovery, device code and token endpoints ---------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


class FakeResponse:
    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code = status_code
        self.text = json.dumps(body)
        self.headers: dict[str, str] = {"Content-Type": "application/json"}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"HTTP {self.status_code}")


class FakeEntra:
    """The ``http_client`` MSAL calls; records token requests and issues at-1, at-2, ..."""

    def __init__(self, authority: str, *, expires_in: int = 3600) -> None:
        self.authority = authority
        self.expires_in = expires_in
        self.token_posts: list[dict[str, Any]] = []
        self.errors: dict[str, dict[str, Any]] = {}  # grant_type -> error body answered with HTTP 400
        self.issuer = f"https://login.microsoftonline.com/{TENANT_GUID}/v2.0"

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> FakeResponse:
        if url == f"{self.authority}/v2.0/.well-known/openid-configuration":
            base = f"{self.authority}/oauth2/v2.0"
            return FakeResponse(
                200,
                {
                    "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token",
                    "device_authorization_endpoint": f"{base}/devicecode",
                    "issuer": self.issuer,
                },
            )
        if "/discovery/instance" in url:
            hosts = ["login.microsoftonline.com", "login.windows.net"]
            return FakeResponse(200, {"tenant_discovery_endpoint": "", "metadata": [{"aliases": hosts}]})
        return FakeResponse(404, {"error": "not_found", "error_description": url})

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any) -> FakeResponse:
        data = dict(data or {})
        if url.endswith("/devicecode"):
            message = "To sign in, open https://microsoft.com/devicelogin and enter the code ABCD-EFGH."
            return FakeResponse(200, {"device_code": "dc", "user_code": "ABCD-EFGH", "interval": 1, "message": message})
        if not url.endswith("/token"):
            return FakeResponse(404, {"error": "not_found"})
        self.token_posts.append(data)
        grant = data.get("grant_type", "")
        if grant in self.errors:
            return FakeResponse(400, self.errors[grant])
        return FakeResponse(200, self._token(grant, data))

    def close(self) -> None:
        pass

    @property
    def grants(self) -> list[str]:
        return [d.get("grant_type", "") for d in self.token_posts]

    def _token(self, grant: str, data: dict[str, Any]) -> dict[str, Any]:
        n = len(self.token_posts)
        token: dict[str, Any] = {"access_token": f"at-{n}", "token_type": "Bearer", "expires_in": self.expires_in}
        if grant == "client_credentials":
            return token
        now = int(time.time())
        claims = {
            "aud": data.get("client_id", DEFAULT_CLIENT_ID),
            "iss": self.issuer,
            "tid": TENANT_GUID,
            "oid": "0000-user",
            "sub": "sub-1",
            "preferred_username": "admin@contoso.onmicrosoft.com",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        token["refresh_token"] = f"rt-{n}"
        token["id_token"] = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        token["client_info"] = _b64({"uid": "0000-user", "utid": TENANT_GUID})
        return token


def make_config(tmp_path: Path, mode: str, **extra: str) -> Config:
    return Config(env_file=tmp_path / "prod.env", tenant_id=TENANT, environment_uri=ORG, auth_mode=mode, **extra)


def msal_provider(config: Config, entra: FakeEntra, messages: list[str] | None = None) -> MsalTokenProvider:
    sink = messages.append if messages is not None else (lambda s: None)
    provider = make_token_provider(config, on_message=sink, http_client=entra)
    assert isinstance(provider, MsalTokenProvider)
    return provider


# -- sign-in modes ------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Change your acquire_token_by_authorization_code:DeprecationWarning")
def test_interactive_then_silent_then_forced_refresh(tmp_path: Path) -> None:
    config = make_config(tmp_path, "interactive")
    entra = FakeEntra(config.authority)
    provider = msal_provider(config, entra)
    app = provider.app
    opened: list[list[str]] = []

    def fake_browser_sign_in(scopes: list[str], **kwargs: Any) -> dict[str, Any]:
        opened.append(scopes)  # the browser part is out of scope; redeem a code at the fake token endpoint
        return app.acquire_token_by_authorization_code("code-1", scopes)

    app.acquire_token_interactive = fake_browser_sign_in
    assert provider.get_token() == "at-1"
    assert opened == [[ORG + "user_impersonation"]]
    assert provider.get_token() == "at-1"  # from MSAL's cache, no request
    assert entra.grants == ["authorization_code"]
    assert provider.get_token(force_refresh=True) == "at-2"
    assert entra.grants == ["authorization_code", "refresh_token"]
    assert entra.token_posts[-1]["refresh_token"] == "rt-1"
    assert len(opened) == 1


def test_device_code_shows_the_message_and_renews_an_expiring_token(tmp_path: Path) -> None:
    config = make_config(tmp_path, "device_code")
    entra = FakeEntra(config.authority, expires_in=60)  # MSAL renews tokens with under 5 minutes left
    messages: list[str] = []
    provider = msal_provider(config, entra, messages)
    assert provider.get_token() == "at-1"
    assert messages == ["To sign in, open https://microsoft.com/devicelogin and enter the code ABCD-EFGH."]
    assert provider.get_token() == "at-2"
    assert entra.grants == ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"]
    assert len(messages) == 1


def test_failed_silent_renewal_falls_back_to_the_device_flow(tmp_path: Path) -> None:
    config = make_config(tmp_path, "device_code")
    entra = FakeEntra(config.authority)
    messages: list[str] = []
    provider = msal_provider(config, entra, messages)
    provider.get_token()
    entra.errors["refresh_token"] = {"error": "invalid_grant", "error_description": "AADSTS70008: expired"}
    assert provider.get_token(force_refresh=True) == "at-3"
    assert entra.grants[-1] == "urn:ietf:params:oauth:grant-type:device_code" and len(messages) == 2


def test_client_secret_mode(tmp_path: Path) -> None:
    config = make_config(tmp_path, "client_secret", client_secret=SECRET)
    entra = FakeEntra(config.authority)
    provider = msal_provider(config, entra)
    assert provider.get_token() == "at-1"
    assert provider.get_token() == "at-1"  # MSAL caches app tokens
    assert provider.get_token(force_refresh=True) == "at-2"
    assert entra.grants == ["client_credentials", "client_credentials"]
    assert entra.token_posts[0]["client_secret"] == SECRET
    assert entra.token_posts[0]["scope"] == ORG + ".default"
    assert SECRET not in repr(provider)


def test_access_token_mode(tmp_path: Path) -> None:
    provider = make_token_provider(make_config(tmp_path, "access_token", access_token="given-token"))
    assert isinstance(provider, StaticTokenProvider)
    assert provider.get_token() == provider.get_token(force_refresh=True) == "given-token"
    assert "given-token" not in repr(provider)


def test_error_answer_becomes_auth_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, "client_secret", client_secret=SECRET)
    entra = FakeEntra(config.authority)
    entra.errors["client_credentials"] = {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t-1\r\nCorrelation ID: c-1",
        "correlation_id": "corr-1",
    }
    with pytest.raises(AuthError) as info:
        msal_provider(config, entra).get_token()
    e = info.value
    assert (e.error, e.correlation_id) == ("invalid_client", "corr-1")
    assert e.message == "Sign-in failed (invalid_client): AADSTS7000215: Invalid client secret provided."
    assert "\n" not in str(e) and SECRET not in str(e) and "prod.env" in e.hint


def test_unknown_tenant_is_an_auth_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, "interactive")
    entra = FakeEntra("https://login.microsoftonline.com/elsewhere")  # discovery for our tenant answers 404
    with pytest.raises(AuthError, match="Cannot use the sign-in authority"):
        make_token_provider(config, http_client=entra)


# -- .env files ---------------------------------------------------------------------------------------------


def write_env(tmp_path: Path, text: str, name: str = "prod.env") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = f"TENANT_ID={TENANT}\nENVIRONMENT_URI=https://contoso.crm11.dynamics.com\n"


def test_good_file_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVIRONMENT_URI", raising=False)
    config = load_config(write_env(tmp_path, "# comment\n" + GOOD), environ={})
    assert config.environment_uri == ORG  # trailing slash added
    assert config.client_id == DEFAULT_CLIENT_ID and config.auth_mode == "interactive"
    assert config.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert config.scopes == [ORG + "user_impersonation"]
    assert "ENVIRONMENT_URI" not in os.environ  # dotenv_values only, never load_dotenv


def test_all_keys(tmp_path: Path) -> None:
    text = (
        f"CLIENT_ID={TENANT_GUID.upper()}\nTENANT_ID={TENANT_GUID}\nENVIRONMENT_URI = {ORG} \n"
        "AUTHORITY_BASE=https://login.microsoftonline.us/\nSCOPE_SUFFIX=/user_impersonation\nAUTH_MODE=Device_Code\n"
    )
    config = load_config(write_env(tmp_path, "\ufeff" + text), environ={})
    assert config.client_id == TENANT_GUID and config.auth_mode == "device_code"
    assert config.authority == f"https://login.microsoftonline.us/{TENANT_GUID}"
    assert config.scopes == [ORG + "user_impersonation"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"TENANT_ID={TENANT}\n",
            "ENVIRONMENT_URI is missing in prod.env. Add a line like ENVIRONMENT_URI=https://yourorg.crm11.dynamics.com/",
        ),
        (f"TENANT_ID={TENANT}\nenvironment_uri={ORG}\n", "(found 'environment_uri': names are upper-case)"),
        (f"ENVIRONMENT_URI={ORG}\n", "TENANT_ID is missing in prod.env"),
        (GOOD + "AUTH_MODE=password\n", "AUTH_MODE in prod.env must be one of interactive, device_code"),
        (GOOD + "CLIENT_ID=my-app\n", "CLIENT_ID in prod.env must be a GUID"),
        (f"TENANT_ID=contoso\nENVIRONMENT_URI={ORG}\n", "TENANT_ID in prod.env must be"),
        (GOOD + "AUTHORITY_BASE=http://login.microsoftonline.com\n", "AUTHORITY_BASE in prod.env must be an https"),
        (GOOD + "AUTH_MODE=client_secret\n", "CLIENT_SECRET is missing: AUTH_MODE=client_secret in prod.env"),
        (f"ENVIRONMENT_URI={ORG}\nAUTH_MODE=access_token\n", "ACCESS_TOKEN is missing"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_env(tmp_path, text), environ={})
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "uri",
    [
        "contoso.crm11.dynamics.com",
        "ftp://contoso.crm11.dynamics.com/",
        "https://",
        "http://contoso.crm11.dynamics.com/",
        "http://10.0.0.5:8080/",
        "https://contoso.crm11.dynamics.com/?x=1",
        "https://contoso.crm11.dynamics.com/#top",
        "https://contoso.crm11.dynamics.com:99999/",
        "https://contoso.crm11.dynamics.com/api/data/v9.2/",
        "https://user:pw@contoso.crm11.dynamics.com/",
    ],
)
def test_bad_environment_uri(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_env(tmp_path, f"TENANT_ID={TENANT}\nENVIRONMENT_URI={uri}\n"), environ={})
    assert "ENVIRONMENT_URI" in info.value.message and "prod.env" in info.value.message


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8080", "http://localhost:5555/", "http://[::1]:8000/"])
def test_loopback_http_is_allowed_for_the_emulator(tmp_path: Path, uri: str) -> None:
    text = f"ENVIRONMENT_URI={uri}\nAUTH_MODE=access_token\nACCESS_TOKEN=emulator\n"
    config = load_config(write_env(tmp_path, text), environ={})
    assert config.environment_uri == uri.rstrip("/") + "/" and config.tenant_id == ""


def test_secrets_come_from_the_environment_first_and_never_show(tmp_path: Path) -> None:
    path = write_env(tmp_path, GOOD + "AUTH_MODE=client_secret\nCLIENT_SECRET=from-file-secret\n")
    assert load_config(path, environ={}).client_secret == "from-file-secret"
    config = load_config(path, environ={"CLIENT_SECRET": SECRET})
    assert config.client_secret == SECRET  # '$HOME' stays as written: no interpolation
    assert SECRET not in repr(config) and SECRET not in str(config)
    token_path = write_env(tmp_path, GOOD + "AUTH_MODE=access_token\n", "t.env")
    config = load_config(token_path, environ={"ACCESS_TOKEN": "tok-secret"})
    assert config.access_token == "tok-secret" and "tok-secret" not in repr(config)
    with pytest.raises(ConfigError) as info:  # a bad file with a secret in it: the secret is not echoed
        load_config(write_env(tmp_path, f"CLIENT_SECRET={SECRET}\nAUTH_MODE=client_secret\n", "b.env"), environ={})
    assert SECRET not in str(info.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.env", environ={})
    bad = tmp_path / "bad.env"
    bad.write_bytes(b"ENVIRONMENT_URI=\xff\xfe\xfa\n")
    with pytest.raises(ConfigError, match="bad.env is not a UTF-8 text file"):
        load_config(bad, environ={})


def test_find_env_files(tmp_path: Path) -> None:
    for name in ("b.env", ".env", "a.env", ".env.example", "notes.txt"):
        (tmp_path / name).write_text("X=1\n")
    (tmp_path / "dir.env").mkdir()
    assert [p.name for p in find_env_files(tmp_path)] == [".env", "a.env", "b.env"]
    (tmp_path / ".env").unlink()
    assert [p.name for p in find_env_files(tmp_path)] == ["a.env", "b.env"]


def test_access_token_with_a_line_break_is_refused_without_echoing_it(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("ENVIRONMENT_URI=http://127.0.0.1:9/\nAUTH_MODE=access_token\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(env, environ={"ACCESS_TOKEN": "eyJabc\ndef-secret-part"})
    assert "line breaks" in str(info.value) and "secret-part" not in str(info.value)


def test_an_environment_uri_with_a_page_names_the_fix(tmp_path: Path) -> None:
    uri = "https://contoso.crm11.dynamics.com/main.aspx?appid=1"
    with pytest.raises(ConfigError):  # the query alone is refused already
        load_config(write_env(tmp_path, f"TENANT_ID={TENANT}\nENVIRONMENT_URI={uri}\n"), environ={})
    with pytest.raises(ConfigError) as info:
        load_config(write_env(tmp_path, f"TENANT_ID={TENANT}\nENVIRONMENT_URI=https://contoso.crm11.dynamics.com"
                                        "/main.aspx\n"), environ={})
    assert "not a page in it" in str(info.value) and "ENVIRONMENT_URI=https://contoso.crm11.dynamics.com/" in str(
        info.value)
