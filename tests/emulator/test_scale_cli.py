"""`python -m dataverse_emulator` with the scale options: --web-servers and the synthetic-partitions dataset."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.emulator.test_cli import ROOT, Running, _env

HEADERS = {"Authorization": "Bearer cli-token"}


def test_help_documents_web_servers_and_the_partitions_dataset() -> None:
    out = subprocess.run([sys.executable, "-m", "dataverse_emulator", "--help"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert "--web-servers N" in out and "ARRAffinity" in out and "per web server" in out
    assert "synthetic-partitions:N" in out and "5,000 cap" in out


@pytest.fixture
def two_servers() -> Iterator[Running]:
    server = Running("--dataset", "synthetic-partitions:100", "--web-servers", "2", "--limits", "60,2,100,52")
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.communicate()


def test_two_web_servers_from_the_command_line(two_servers: Running) -> None:
    server = two_servers
    url = server.url + "api/data/v9.2/"
    values, statuses = [], []
    for _ in range(5):
        resp = requests.get(url + "contacts?$select=contactid&$top=1", headers=HEADERS, timeout=10)
        statuses.append(resp.status_code)
        values.append(resp.cookies.get("ARRAffinity"))
    assert statuses == [200] * 4 + [429]
    assert len(set(values)) == 2 and values[0] == values[2] != values[1] == values[3]
    assert server.stop()[0] == 0


def test_bad_values_are_refused() -> None:
    for args in (["--web-servers", "0"], ["--dataset", "synthetic-partitions:x"]):
        proc = subprocess.run([sys.executable, "-m", "dataverse_emulator", *args], cwd=ROOT, env=_env(),
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and "error" in proc.stderr
