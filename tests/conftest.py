"""Shared fixtures: no proxies for loopback traffic, and the local Dataverse emulator on a free port.

- `emulator`: one emulator per test module, dataset "empty" (the base users, views and rules only); tests
  insert their own rows through `emulator.store` or over HTTP.
- `make_emulator(**kw)`: start more emulators with any `start_emulator` option; all stop at teardown.
- `api`: a small requests-based helper bound to `emulator`, with `Authorization: Bearer test-token`.
- `make_api(handle, token=...)`: the same helper for another emulator or token.
- `server`: a scriptable HTTP server (script_server.py) for the client's own tests of status codes and
  transport failures that a faithful emulator never produces on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from builders import FAST, RecordingTokens
from script_server import ScriptServer

from dataverse import DataverseClient
from dataverse_emulator import EmulatorHandle, start_emulator

PROXY_VARS = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE",
              "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def clean_proxy_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Corporate machines would otherwise send localhost traffic to a proxy."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


class Api:
    """Raw HTTP against an emulator: paths are relative to the API root (`contacts(...)`)."""

    def __init__(self, handle: EmulatorHandle, token: str | None = "test-token", timeout: float = 10.0) -> None:
        self.handle = handle
        self.base = handle.api_url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers.update({"Accept": "application/json", "OData-Version": "4.0",
                                     "OData-MaxVersion": "4.0"})
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", self.timeout)
        return self.session.request(method, self.url(path), **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def create(self, set_name: str, body: dict[str, Any]) -> str:
        """POST a record and return its id (from OData-EntityId)."""
        resp = self.post(set_name, json=body)
        assert resp.status_code == 204, resp.text
        return resp.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    handle = start_emulator("empty")
    yield handle
    handle.stop()


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., EmulatorHandle]]:
    handles: list[EmulatorHandle] = []

    def make(dataset: str = "empty", **kw: Any) -> EmulatorHandle:
        handle = start_emulator(dataset, **kw)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.stop()


@pytest.fixture
def make_api() -> Iterator[Callable[..., Api]]:
    made: list[Api] = []

    def make(handle: EmulatorHandle, token: str | None = "test-token", **kw: Any) -> Api:
        api = Api(handle, token, **kw)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def api(emulator: EmulatorHandle) -> Iterator[Api]:
    helper = Api(emulator)
    yield helper
    helper.close()


@pytest.fixture
def server() -> Iterator[ScriptServer]:
    s = ScriptServer()
    yield s
    s.close()


@pytest.fixture
def tokens() -> RecordingTokens:
    return RecordingTokens()


@pytest.fixture
def client(server: ScriptServer, tokens: RecordingTokens) -> Iterator[DataverseClient]:
    """A client of the scripted server (test files that need other settings define their own)."""
    with DataverseClient(server.url, tokens, FAST) as c:
        yield c
