"""Service protection limits: the limiter on a fake clock, then the 429s over HTTP with scaled windows."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from dataverse_emulator.errors import ServiceError
from dataverse_emulator.limits import Limiter, exec_message, requests_message, theoretical_ceiling
from dataverse_emulator.options import Limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _refused(limiter: Limiter, user: str = "u") -> ServiceError:
    with pytest.raises(ServiceError) as info:
        limiter.acquire(user)
    assert info.value.status == 429
    return info.value


def test_request_count_limit_slides_and_retry_after_lets_the_client_through() -> None:
    clock = Clock()
    limiter = Limiter(Limits(10, 3, 100, 50), clock)
    for offset in (0.0, 2.5, 4.0):
        clock.now = 1000 + offset
        limiter.release(limiter.acquire("u"), 0.0)
    clock.now = 1005.0
    err = _refused(limiter)
    assert err.code == "0x80072322"
    assert err.message == "Number of requests exceeded the limit of 3 over time window of 10 seconds."
    assert err.headers["Retry-After"] == "5"  # the oldest start (1000) leaves the window at 1010
    assert limiter.acquire("other")  # per user
    clock.now += int(err.headers["Retry-After"])
    limiter.acquire("u")
    assert limiter.remaining("u")[0] == 0


def test_execution_time_limit() -> None:
    clock = Clock()
    limiter = Limiter(Limits(10, 100, 1.0, 50), clock)
    limiter.release(limiter.acquire("u"), 0.6)
    clock.now += 3
    limiter.release(limiter.acquire("u"), 0.6)
    err = _refused(limiter)
    assert err.code == "0x80072321"
    assert err.message.startswith("Combined execution time of incoming requests exceeded limit of 1,000  milliseconds")
    assert err.headers["Retry-After"] == "7"  # the first 0.6 s (finished at 1000) expires at 1010
    clock.now += 7
    limiter.acquire("u")


def test_concurrency_limit_fails_immediately_and_frees_on_release() -> None:
    limiter = Limiter(Limits(10, 100, 100, 2), Clock())
    tickets = [limiter.acquire("u"), limiter.acquire("u")]
    err = _refused(limiter)
    assert (err.code, err.message) == ("0x80072326", "Number of concurrent requests exceeded the limit of 2.")
    assert err.headers["Retry-After"] == "1"
    limiter.release(tickets[0], 0.0)
    limiter.acquire("u")


def test_messages_use_the_real_numbers() -> None:
    real = Limits()
    assert requests_message(real) == "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
    assert exec_message(real) == (
        "Combined execution time of incoming requests exceeded limit of 1,200,000  milliseconds over time window of "
        "300 seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.")


def test_theoretical_ceiling() -> None:
    real = Limits()
    assert theoretical_ceiling(real, 0, 0) == 20.0  # 6000 / 300 s
    assert theoretical_ceiling(real, 1000, 0) == pytest.approx(4.0)  # 1200 s / 300 s / 1 s
    assert theoretical_ceiling(Limits(10, 10_000, 1000, 4), 100, 100) == pytest.approx(20.0)  # 4 / 0.2 s
    assert math.isinf(theoretical_ceiling(None, 10, 10))


# -- over HTTP ------------------------------------------------------------------------------------------------
def test_429_with_retry_after_then_success(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(limits="2,5,100,52")
    api = make_api(dv)
    statuses = [api.get("WhoAmI").status_code for _ in range(5)]
    assert statuses == [200] * 5
    resp = api.get("WhoAmI")
    assert resp.status_code == 429
    assert resp.json()["error"] == {
        "code": "0x80072322", "message": "Number of requests exceeded the limit of 5 over time window of 2 seconds."}
    wait = int(resp.headers["Retry-After"])
    assert 1 <= wait <= 2
    assert dv.store.counters.throttled == 1
    time.sleep(wait)
    ok = api.get("WhoAmI")
    assert ok.status_code == 200
    assert "x-ms-ratelimit-burst-remaining-xrm-requests" in ok.headers


def test_concurrency_limit_over_http(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(limits="10,1000,1000,2", latency_ms=300)
    statuses: list[int] = []
    codes: list[str] = []

    def call() -> None:
        resp = make_api(dv).get("WhoAmI")
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            codes.append(resp.json()["error"]["code"])

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(200) == 2 and statuses.count(429) == 3
    assert set(codes) == {"0x80072326"}


def test_execution_time_limit_counts_merge_time(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(limits="5,1000,0.3,52", merge_ms=200)
    dv.app.actions["Merge"] = lambda ctx, params: None  # the sleep is the server's, not the handler's
    api = make_api(dv)
    started = time.monotonic()
    assert api.post("Merge", json={}).status_code == 204
    assert time.monotonic() - started >= 0.2
    assert api.post("Merge", json={}).status_code == 204
    resp = api.post("Merge", json={})
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "0x80072321"
    assert "300  milliseconds over time window of 5 seconds" in resp.json()["error"]["message"]
    assert api.get("WhoAmI").status_code == 429  # execution time is per user, whatever the request


def test_batch_counts_once_against_the_request_limit(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(limits="5,2,100,52")
    api = make_api(dv)
    parts = "".join(
        "--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "GET /api/data/v9.2/WhoAmI HTTP/1.1\r\n\r\n" for _ in range(5))
    resp = api.post("$batch", data=parts + "--b--\r\n", headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert resp.status_code == 200 and resp.text.count("HTTP/1.1 200 OK") == 5
    assert api.get("WhoAmI").status_code == 200
    assert api.get("WhoAmI").status_code == 429
