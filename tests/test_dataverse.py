"""dataverse.py against tests/script_server.py: headers, paging, retries, throttling, errors, metadata."""

from __future__ import annotations

import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from builders import FAST, RecordingTokens
from script_server import DROP, ScriptServer

from dataverse import (
    ClientSettings,
    DataverseClient,
    odata_string,
)
from errors import DataverseError, NotFoundError, OutcomeUnknownError

OK: tuple[int, dict[str, str], dict] = (200, {}, {"value": []})


def error(status: int, code: str, message: str, **headers: str) -> tuple[int, dict[str, str], dict]:
    return (status, dict(headers), {"error": {"code": code, "message": message}})


def test_headers_on_every_request_and_token_not_logged(
    server: ScriptServer, client: DataverseClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(OK, (204, {}, None))
    assert client.get("contacts") == {"value": []}
    assert client.post("Merge", {"x": "é"}) is None
    get, post = server.received
    assert get.path == "/api/data/v9.2/contacts"
    for r in (get, post):
        assert r.headers["odata-version"] == "4.0"
        assert r.headers["odata-maxversion"] == "4.0"
        assert r.headers["accept"] == "application/json"
        assert r.headers["user-agent"] == "dynamics-duplicate-resolver/0.1"
        assert r.headers["authorization"] == "Bearer tok-1"
    assert "content-type" not in get.headers
    assert post.headers["content-type"] == "application/json; charset=utf-8"
    assert post.json() == {"x": "é"}
    assert "GET contacts -> 200" in caplog.text and "(attempt 1)" in caplog.text
    assert "tok-1" not in caplog.text and "Bearer" not in caplog.text
    assert client.api_url == server.url + "api/data/v9.2/"


def test_get_all_follows_next_link_over_three_pages(server: ScriptServer, client: DataverseClient) -> None:
    def page(n: int, last: bool = False) -> tuple[int, dict[str, str], dict]:
        body: dict = {"value": [{"n": n * 10 + i} for i in range(2)]}
        if not last:
            body["@odata.nextLink"] = (
                f"{client.api_url}contacts?$select=n&$skiptoken=%3Ccookie%20page%3D%22{n + 1}%22%2F%3E"
            )
        return (200, {}, body)

    server.script(page(1), page(2), page(3, last=True))
    tricky = "O'Brien & Co #1 100% é+x=y"
    params = {"$select": "n", "$filter": f"name eq {odata_string(tricky)}"}
    rows = list(client.get_all("contacts", params, page_size=2))
    assert [r["n"] for r in rows] == [10, 11, 20, 21, 30, 31]
    first, second, third = server.received
    assert "$filter=" in first.path and "$select=n" in first.path
    assert first.query()["$filter"] == ["name eq 'O''Brien & Co #1 100% é+x=y'"]
    assert second.path == "/api/data/v9.2/contacts?$select=n&$skiptoken=%3Ccookie%20page%3D%222%22%2F%3E"
    assert third.path.endswith("page%3D%223%22%2F%3E")
    assert all(r.headers["prefer"] == "odata.maxpagesize=2" for r in server.received)


def test_annotations_prefer(server: ScriptServer, client: DataverseClient) -> None:
    server.script(OK, OK)
    client.get("contacts(1)", annotations=True)
    list(client.get_all("contacts", annotations=True))
    assert server.received[0].headers["prefer"] == 'odata.include-annotations="*"'
    assert server.received[1].headers["prefer"] == 'odata.include-annotations="*",odata.maxpagesize=5000'


def test_429_waits_retry_after_then_succeeds(server: ScriptServer, client: DataverseClient) -> None:
    server.script(error(429, "0x80072322", "Number of requests exceeded the limit.", **{"Retry-After": "1"}), OK)
    started = time.monotonic()
    assert client.get("contacts") == {"value": []}
    assert time.monotonic() - started >= 0.95
    assert server.received[1].at - server.received[0].at >= 0.95
    assert client.stats.throttled == 1 and client.stats.throttle_wait_s >= 0.9
    assert client.stats.requests == 2


def test_429_pauses_every_thread(server: ScriptServer, client: DataverseClient) -> None:
    server.script(error(429, "0x80072326", "Too many concurrent requests.", **{"Retry-After": "1"}), OK, OK)
    worker = threading.Thread(target=client.get, args=("a",))
    worker.start()
    while not server.received:
        time.sleep(0.01)
    time.sleep(0.2)  # the worker has the 429 and has closed the gate
    client.get("b")
    worker.join()
    throttled_at = server.received[0].at
    assert all(r.at - throttled_at >= 0.95 for r in server.received[1:])


def test_429_on_unsafe_post_is_retried(server: ScriptServer, client: DataverseClient) -> None:
    server.script(error(429, "0x80072321", "Execution time exceeded.", **{"Retry-After": "0.1"}), (204, {}, None))
    assert client.post("Merge", {"Target": {}}) is None
    assert [r.method for r in server.received] == ["POST", "POST"]


def test_429_gives_up_when_the_wait_budget_is_used(server: ScriptServer, tokens: RecordingTokens) -> None:
    server.script(error(429, "0x80072322", "Number of requests exceeded the limit.", **{"Retry-After": "7"}))
    with DataverseClient(server.url, tokens, ClientSettings(max_throttle_wait=5)) as c:
        with pytest.raises(DataverseError) as info:
            c.post("Merge", {})
    assert info.value.status == 429 and info.value.retry_after == 7
    assert "service protection" in info.value.hint


def test_503_then_success_on_get(server: ScriptServer, client: DataverseClient) -> None:
    server.script(error(503, "", "Service unavailable", **{"Retry-After": "0"}), OK)
    assert client.get("contacts") == {"value": []}
    assert len(server.received) == 2 and client.stats.retries == 1


def test_500_twice_then_success_on_get(server: ScriptServer, client: DataverseClient) -> None:
    server.script(error(500, "0x80040216", "Unexpected"), error(500, "0x80040216", "Unexpected"), OK)
    assert client.get("contacts") == {"value": []}
    assert len(server.received) == 3 and client.stats.retries == 2


def test_500_until_retries_are_used_up(server: ScriptServer, client: DataverseClient) -> None:
    server.script(*[error(500, "0x80040216", "Unexpected")] * 4)
    with pytest.raises(DataverseError) as info:
        client.get("contacts")
    assert info.value.status == 500 and len(server.received) == 4


def test_dropped_connection_on_get_is_retried(server: ScriptServer, client: DataverseClient) -> None:
    server.script(DROP, OK)
    assert client.get("contacts") == {"value": []}
    assert len(server.received) == 2


def test_dropped_connection_on_post_is_outcome_unknown(server: ScriptServer, client: DataverseClient) -> None:
    server.script(DROP, (204, {}, None))
    with pytest.raises(OutcomeUnknownError) as info:
        client.post("Merge", {"Target": {}})
    assert info.value.status is None and "outcome is unknown" in str(info.value)
    assert [r.method for r in server.received] == ["POST"]


def test_500_on_post_is_outcome_unknown(server: ScriptServer, client: DataverseClient) -> None:
    server.script(error(500, "0x80040216", "Boom"), (204, {}, None))
    with pytest.raises(OutcomeUnknownError) as info:
        client.post("Merge", {})
    assert info.value.status == 500 and info.value.code == "0x80040216"
    assert len(server.received) == 1


def test_post_marked_safe_is_retried(server: ScriptServer, client: DataverseClient) -> None:
    server.script(DROP, (200, {}, {"JobId": "j"}))
    assert client.post("BulkDetectDuplicates", {}, safe_to_retry=True) == {"JobId": "j"}


def test_refused_connection_is_retried_even_for_post(tokens: RecordingTokens) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with DataverseClient(f"http://127.0.0.1:{port}", tokens, FAST) as c:
        with pytest.raises(DataverseError) as info:
            c.post("Merge", {})
    assert type(info.value) is DataverseError and info.value.status is None
    assert f"Cannot reach 127.0.0.1:{port}" in str(info.value) and "ENVIRONMENT_URI" in str(info.value)
    assert c.stats.requests == FAST.max_retries + 1


def test_401_refreshes_the_token_once_and_retries(
    server: ScriptServer, client: DataverseClient, tokens: RecordingTokens
) -> None:
    server.script(error(401, "", "expired"), (204, {}, None))
    assert client.post("Merge", {}) is None
    assert tokens.calls == [False, True, False]
    assert [r.headers["authorization"] for r in server.received] == ["Bearer tok-1", "Bearer tok-2"]


def test_second_401_is_an_error_with_a_sign_in_hint(server: ScriptServer, client: DataverseClient) -> None:
    server.script(error(401, "", "expired"), error(401, "", "still expired"))
    with pytest.raises(DataverseError) as info:
        client.get("contacts")
    assert info.value.status == 401 and "Sign in" in info.value.hint
    assert len(server.received) == 2


def test_token_expiring_during_a_throttle_wait_is_refreshed_again(
    server: ScriptServer, client: DataverseClient, tokens: RecordingTokens
) -> None:
    """401, refresh, 429 (a wait the new token may not outlive), 401 again: one more refresh, then success."""
    server.script(
        error(401, "", "expired"),
        error(429, "0x80072322", "Too many.", **{"Retry-After": "0"}),
        error(401, "", "expired again"),
        (200, {}, {"value": []}),
    )
    assert client.get("contacts") == {"value": []}
    assert tokens.calls.count(True) == 2


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, "0x80040203", "Invalid argument."),
        (404, "0x80040217", "The specified object was not found."),
        (412, "0x80060882", "The version of the existing record doesn't match."),
        (500, "0x80040216", "An unexpected error occurred."),
    ],
)
def test_error_mapping(server: ScriptServer, tokens: RecordingTokens, status: int, code: str, message: str) -> None:
    server.script(error(status, code, f"{message}\r\n  ", **{"x-ms-service-request-id": "req-42"}))
    with DataverseClient(server.url, tokens, ClientSettings(max_retries=0)) as c:
        with pytest.raises(DataverseError) as info:
            c.patch("contacts(1)", {"a": 1})
    e = info.value
    assert (e.status, e.code, e.request_id) == (status, code, "req-42")
    assert e.message == f"Dataverse refused PATCH contacts(1) (HTTP {status} {code}): {message}"
    assert isinstance(e, NotFoundError) is (status == 404)
    assert server.received[0].headers["if-match"] == "*"


def test_non_json_error_body(server: ScriptServer, client: DataverseClient) -> None:
    server.script((403, {"Content-Type": "text/html"}, "<html>\n Forbidden </html>"))
    with pytest.raises(DataverseError) as info:
        client.delete("contacts(1)")
    assert info.value.message == "Dataverse refused DELETE contacts(1) (HTTP 403): <html> Forbidden </html>"
    assert "privilege" in info.value.hint


def test_metadata_is_parsed_and_cached(server: ScriptServer, client: DataverseClient) -> None:
    entity = {
        "LogicalName": "contact",
        "EntitySetName": "contacts",
        "PrimaryIdAttribute": "contactid",
        "PrimaryNameAttribute": "fullname",
        "ObjectTypeCode": 2,
    }

    def attr(name: str, kind: str, update: bool = True, of: str | None = None) -> dict:
        return {
            "LogicalName": name,
            "AttributeType": kind,
            "IsValidForUpdate": update,
            "IsValidForRead": True,
            "AttributeOf": of,
        }

    attributes = [
        attr("contactid", "Uniqueidentifier", update=False),
        attr("emailaddress1", "String"),
        attr("createdon", "DateTime", update=False),
        attr("parentcustomerid", "Customer"),
        attr("parentcustomeridname", "String", update=False, of="parentcustomerid"),
        attr("ownerid", "Owner"),
    ]
    lookups = [
        {"LogicalName": "parentcustomerid", "Targets": ["account", "contact"]},
        {"LogicalName": "ownerid", "Targets": ["systemuser", "team"]},
    ]
    server.script((200, {}, entity), (200, {}, {"value": attributes}), (200, {}, {"value": lookups}))
    meta = client.entity(" contact ")
    assert client.entity("contact") is meta and len(server.received) == 3
    assert (meta.entity_set_name, meta.primary_id, meta.primary_name, meta.object_type_code) == (
        "contacts",
        "contactid",
        "fullname",
        2,
    )
    assert meta.updatable() == frozenset({"emailaddress1", "parentcustomerid", "ownerid"})
    assert meta.readable() == ["_ownerid_value", "_parentcustomerid_value", "contactid", "createdon", "emailaddress1"]
    assert meta.lookups() == {"parentcustomerid": ("account", "contact"), "ownerid": ("systemuser", "team")}
    paths = [urlsplit(r.path).path for r in server.received]
    assert paths[0] == "/api/data/v9.2/EntityDefinitions(LogicalName='contact')"
    assert paths[2].endswith("/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata")
    assert server.received[1].query()["$select"] == [
        "LogicalName,AttributeType,IsValidForUpdate,IsValidForRead,AttributeOf"
    ]


def test_unknown_table(server: ScriptServer, client: DataverseClient) -> None:
    server.script(error(404, "0x80040217", "Could not find entity"))
    with pytest.raises(DataverseError) as info:
        client.entity("nosuch")
    assert info.value.status == 404 and info.value.message == "There is no table named 'nosuch' in this environment."


def test_dop_hint_is_recorded(server: ScriptServer, client: DataverseClient) -> None:
    server.script((200, {"x-ms-dop-hint": "8"}, {"value": []}))
    client.get("contacts")
    assert client.stats.dop_hint == 8 and client.stats.as_dict()["dop_hint"] == 8


def test_affinity_cookie_is_not_sent_back(server: ScriptServer, client: DataverseClient) -> None:
    server.script(
        (200, {"Set-Cookie": "ARRAffinity=abc123; Path=/; HttpOnly"}, {}),
        (200, {"Set-Cookie": "ARRAffinitySameSite=abc; Path=/"}, {}),
        (200, {"Set-Cookie": "other=1; Path=/"}, {}),
        OK,
    )
    for path in "abcd":
        client.get(path)
    assert [r.headers.get("cookie") for r in server.received] == [None, None, None, "other=1"]


def test_next_link_to_another_host_is_refused(server: ScriptServer, client: DataverseClient) -> None:
    server.script((200, {}, {"value": [{"a": 1}], "@odata.nextLink": "https://evil.example/api/data/v9.2/contacts"}))
    with pytest.raises(DataverseError, match="outside"):
        list(client.get_all("contacts"))
    assert len(server.received) == 1


def test_a_next_link_whose_host_differs_only_in_case_is_followed(server: ScriptServer, tokens: RecordingTokens) -> None:
    with DataverseClient(f"http://localhost:{server.port}/", tokens, FAST) as c:
        link = f"http://LocalHost:{server.port}/api/data/v9.2/contacts?$skiptoken=2"
        server.script((200, {}, {"value": [{"a": 1}], "@odata.nextLink": link}), (200, {}, {"value": [{"a": 2}]}))
        assert [r["a"] for r in c.get_all("contacts")] == [1, 2]
    assert server.received[1].path == "/api/data/v9.2/contacts?$skiptoken=2"


def test_a_token_that_cannot_be_renewed_is_refused_once_then_never_sent_again(server: ScriptServer) -> None:
    from auth import StaticTokenProvider
    from errors import TokenRefusedError

    server.script((401, {"WWW-Authenticate": "Bearer authorization_uri=https://login.example/"}, None))
    with DataverseClient(server.url, StaticTokenProvider("dead"), FAST) as c:
        with pytest.raises(TokenRefusedError, match="could not be renewed") as info:
            c.get("WhoAmI")
        assert "ACCESS_TOKEN" in info.value.hint
        with pytest.raises(TokenRefusedError):
            c.post("Merge", {"x": 1})
    assert len(server.received) == 1  # the Merge was never sent with the refused token
