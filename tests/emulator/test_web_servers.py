"""Several web servers over one store: limits per server, the ARRAffinity cookie, round robin without it."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import pytest
import requests

from dataverse_emulator import start_emulator
from dataverse_emulator.webservers import parse_cookies

LIMITS = "60,5,100,52"  # 5 requests per user per server in a 60 s window (nothing slides out during a test)


def _affinity(resp: requests.Response) -> str:
    cookies = resp.raw.headers.getlist("Set-Cookie")
    assert len(cookies) == 2, cookies
    plain, same_site = cookies
    assert re.fullmatch(r"ARRAffinity=[0-9a-f]{64};Path=/;HttpOnly", plain)
    assert re.fullmatch(r"ARRAffinitySameSite=[0-9a-f]{64};Path=/;HttpOnly;SameSite=None", same_site)
    value = plain.split(";")[0].split("=", 1)[1]
    assert same_site.split(";")[0].split("=", 1)[1] == value
    return value


def test_without_the_cookie_two_servers_give_twice_the_ceiling(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", limits=LIMITS, web_servers=2)
    api = make_api(dv)
    statuses, servers = [], []
    for _ in range(11):
        resp = api.get("WhoAmI")
        statuses.append(resp.status_code)
        servers.append(_affinity(resp))
        api.session.cookies.clear()  # as Microsoft recommends for throughput, and as the tool does
    assert statuses == [200] * 10 + [429]
    assert servers[:10] == [dv.app.servers[i % 2].affinity for i in range(10)]  # round robin
    assert len(set(servers)) == 2
    body = api.get("WhoAmI").json()["error"]
    assert body["code"] == "0x80072322" and "limit of 5 over time window of 60 seconds" in body["message"]
    assert Counter(e.web_server for e in dv.store.counters.requests if e.status == 200) == {0: 5, 1: 5}


def test_with_the_cookie_kept_one_servers_ceiling(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", limits=LIMITS, web_servers=2)
    api = make_api(dv)  # a requests.Session keeps cookies, as a browser or the SDK's default does
    statuses = [api.get("WhoAmI").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429, 429]
    assert api.session.cookies.get("ARRAffinity") == dv.app.servers[0].affinity
    assert {e.web_server for e in dv.store.counters.requests} == {0}
    # the other server still has its whole allowance: a request without the cookie lands there
    other = make_api(dv)
    assert other.get("WhoAmI").status_code == 200
    assert other.session.cookies.get("ARRAffinity") == dv.app.servers[1].affinity


def test_either_cookie_name_routes_and_an_unknown_value_is_balanced(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", web_servers=3)
    api = make_api(dv)
    second = dv.app.servers[1].affinity
    for header in (f"ARRAffinity={second}", f"other=1; ARRAffinitySameSite={second.upper()}"):
        for _ in range(3):
            resp = api.get("WhoAmI", headers={"Cookie": header})
            assert _affinity(resp) == second
    unknown = [_affinity(api.get("WhoAmI", headers={"Cookie": "ARRAffinity=" + "0" * 64})) for _ in range(3)]
    assert unknown == [s.affinity for s in dv.app.servers]  # balanced, each answer naming its server


def test_servers_share_the_store_but_not_their_counters_or_hints(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", limits=LIMITS, web_servers=2)
    dv.app.servers[1].dop_hint = 3
    first, second = (f"ARRAffinity={s.affinity}" for s in dv.app.servers)
    api = make_api(dv)
    api.session.cookies.set_policy(_NoCookies())
    created = api.post("contacts", json={"lastname": "Shared"}, headers={"Cookie": first})
    rid = created.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    read = api.get(f"contacts({rid})?$select=lastname", headers={"Cookie": second})
    assert read.json()["lastname"] == "Shared"
    assert (created.headers["x-ms-dop-hint"], read.headers["x-ms-dop-hint"]) == ("8", "3")
    assert created.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "4"
    assert read.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "4"  # its own count, not 3


def test_concurrency_and_execution_time_are_per_server(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", limits="60,1000,0.5,2", web_servers=2, latency_ms=300)
    first, second = (f"ARRAffinity={s.affinity}" for s in dv.app.servers)
    results: list[tuple[str, int]] = []

    def call(cookie: str) -> None:
        results.append((cookie, make_api(dv).get("WhoAmI", headers={"Cookie": cookie}).status_code))

    threads = [threading.Thread(target=call, args=(c,)) for c in (first, first, first, second, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for c, s in results if c == first) == [200, 200, 429]  # 2 concurrent per server
    assert sorted(s for c, s in results if c == second) == [200, 200]

    dv.app.actions["Merge"] = lambda ctx, params: time.sleep(0.6)  # 0.6 s of execution time on one server
    api = make_api(dv)
    api.session.cookies.set_policy(_NoCookies())
    assert api.post("Merge", json={}, headers={"Cookie": first}).status_code == 204
    refused = api.get("WhoAmI", headers={"Cookie": first})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "0x80072321"
    assert api.get("WhoAmI", headers={"Cookie": second}).status_code == 200


def test_one_server_by_default_and_a_bad_count_is_refused() -> None:
    with start_emulator("empty") as dv:
        assert len(dv.app.servers) == 1 and dv.app.limiter is dv.app.servers[0].limiter
    with pytest.raises(ValueError, match="web_servers"):
        start_emulator("empty", web_servers=0)


def test_parse_cookies_is_tolerant() -> None:
    assert parse_cookies(' a=1; b="x y" ;junk; c=') == [("a", "1"), ("b", "x y"), ("c", "")]


class _NoCookies(DefaultCookiePolicy):
    """Keep nothing, so the explicit Cookie header of each request decides the server."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False
