"""`python -m dataverse_emulator`: the ready line, serving, a clean exit on SIGTERM, state files, TLS, bad options."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
HEADERS = {"Authorization": "Bearer cli-token"}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Running:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "dataverse_emulator", "--port", "0", *args],
                                     cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline().rstrip("\n")
        self.url = self.line.rsplit(" ", 1)[-1]

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=15)
        return self.proc.returncode, out, err


@pytest.fixture
def run() -> Iterator[type[Running]]:
    started: list[Running] = []

    class Tracked(Running):
        def __init__(self, *args: str) -> None:
            super().__init__(*args)
            started.append(self)

    yield Tracked
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.communicate()


def test_prints_the_listening_line_serves_and_exits_0_on_sigterm(run: type[Running]) -> None:
    server = run("--dataset", "empty")
    assert server.line.startswith("Dataverse emulator listening on http://127.0.0.1:")
    assert server.url.endswith("/")
    resp = requests.get(server.url + "api/data/v9.2/WhoAmI", headers=HEADERS, timeout=10)
    assert resp.status_code == 200
    code, out, err = server.stop()
    assert code == 0 and out == "" and "Traceback" not in err


def test_state_file_survives_a_restart(run: type[Running], tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = run("--dataset", "empty", "--state-file", str(state))
    resp = requests.post(first.url + "api/data/v9.2/accounts", json={"name": "Persisted"}, headers=HEADERS,
                         timeout=10)
    entity_id = resp.headers["OData-EntityId"]
    assert first.stop()[0] == 0 and state.is_file()
    second = run("--dataset", "empty", "--state-file", str(state))
    path = entity_id.split("/api/data/v9.2/", 1)[1]
    again = requests.get(second.url + "api/data/v9.2/" + path, headers=HEADERS, timeout=10)
    assert again.status_code == 200 and again.json()["name"] == "Persisted"
    assert second.stop()[0] == 0


@pytest.mark.parametrize("args", [
    ["--limits", "x"], ["--faults", "nonsense=1"], ["--dataset", "nope"], ["--port", "99999"],
    ["--latency-ms", "-5"], ["--duplicate-records", "triples"], ["--tls-cert", "missing.pem"],
])
def test_bad_options_exit_2_without_traceback(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "dataverse_emulator", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


def test_help_documents_the_fault_syntax() -> None:
    proc = subprocess.run([sys.executable, "-m", "dataverse_emulator", "--help"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    for word in ("503=SHARE", "drop=SHARE", "slow=SHARE:SECONDS", "token-ttl=SECONDS", "W,R,E,C"):
        assert word in proc.stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls(run: type[Running], tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    server = run("--dataset", "empty", "--tls-cert", str(cert), "--tls-key", str(key))
    assert server.url.startswith("https://127.0.0.1:")
    resp = requests.get(server.url + "api/data/v9.2/WhoAmI", headers=HEADERS, timeout=10, verify=str(cert))
    assert resp.status_code == 200
    assert server.stop()[0] == 0
