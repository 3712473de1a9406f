"""GET requests in a `$batch`: the wire format (Microsoft's documented examples), and DataverseClient.batch_get
against tests/script_server.py: answers in order, a part's error raised as a single GET's would be, and a
throttled or transient batch sent again as a whole."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from script_server import Received, ScriptServer

from dataverse import ClientSettings, DataverseClient
from dataverse.batch import BatchFormatError, batch_body, read_batch
from errors import DataverseError, NotFoundError

FAST = ClientSettings(connect_timeout=2, read_timeout=5, backoff_base=0.01, max_retries=2, max_retry_after=5)

# The continue-on-error answer from Microsoft's "Execute batch operations using the Web API" (its line breaks).
DOC_ANSWER = (
    "--batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139\r\n"
    "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 400 Bad Request\r\nREQ_ID: de4c5227-4a28-4ebd-8ced-3392ece1697b\r\n"
    "Content-Type: application/json; odata.metadata=minimal\r\nOData-Version: 4.0\r\n\r\n"
    '{"error":{"code":"0x80044331","message":"A validation error occurred.  The length of the \'subject\' '
    "attribute of the 'task' entity exceeded the maximum allowed length of '200'.\"}}\r\n"
    "--batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139\r\n"
    "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n"
    "Location: [Organization Uri]/api/data/v9.2/tasks(aed2ae8b-3c94-ed11-aad1-000d3a9933c9)\r\n\r\n\r\n"
    "--batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139--\r\n"
)
DOC_TYPE = "multipart/mixed; boundary=batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139"


def answer(*parts: tuple[int, dict[str, str], Any]) -> tuple[int, dict[str, str], bytes]:
    """A 200 $batch answer holding `parts` (status, headers, JSON body or None)."""
    boundary = "batchresponse_test"
    text = ""
    for status, headers, body in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        payload = "" if body is None else json.dumps(body)
        text += (f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                 f"HTTP/1.1 {status} X\r\nContent-Type: application/json; odata.metadata=minimal\r\n{head}\r\n"
                 f"{payload}\r\n")
    text += f"--{boundary}--\r\n"
    return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, text.encode("utf-8")


def sent_urls(received: Received) -> list[str]:
    return re.findall(r"^GET (\S+) HTTP/1\.1\r$", received.body.decode(), re.M)


@pytest.fixture
def client(server: ScriptServer) -> Iterator[DataverseClient]:
    class Tokens:
        def get_token(self, *, force_refresh: bool = False) -> str:
            return "tok"

    with DataverseClient(server.url, Tokens(), FAST) as c:
        yield c


CALLS = [("RetrieveDuplicates(BusinessEntity=@b)", {"@b": '{"contactid":"a"}'}), ("contacts(x)", None),
         ("WhoAmI", {})]


def test_the_documented_answer_is_read_part_by_part() -> None:
    bad, created = read_batch(DOC_TYPE, DOC_ANSWER.encode())
    assert bad.status == 400 and bad.headers["req_id"] == "de4c5227-4a28-4ebd-8ced-3392ece1697b"
    assert json.loads(bad.body)["error"]["code"] == "0x80044331"
    assert created.status == 204 and created.body == b"" and created.headers["odata-version"] == "4.0"
    with pytest.raises(BatchFormatError):
        read_batch("application/json", b"{}")
    with pytest.raises(BatchFormatError, match="closing boundary"):
        read_batch(DOC_TYPE, DOC_ANSWER.encode()[:-40])


def test_the_body_sent_has_one_application_http_part_per_url() -> None:
    body, content_type = batch_body(["https://org.example/api/data/v9.2/WhoAmI", "https://org.example/x?a=1"])
    boundary = content_type.split("boundary=")[1]
    text = body.decode()
    assert content_type.startswith("multipart/mixed; ") and text.endswith(f"--{boundary}--\r\n")
    assert text.count(f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n") == 2
    assert "GET https://org.example/x?a=1 HTTP/1.1\r\nAccept: application/json\r\n\r\n" in text


def test_answers_come_back_in_order_from_one_request(server: ScriptServer, client: DataverseClient) -> None:
    server.script(answer((200, {}, {"value": [1]}), (200, {}, {"id": "x"}), (204, {}, None)))
    assert client.batch_get(CALLS) == [{"value": [1]}, {"id": "x"}, {}]
    (sent,) = server.received
    assert sent.method == "POST" and sent.path == "/api/data/v9.2/$batch"
    assert sent.headers["prefer"] == "odata.continue-on-error"
    assert sent.headers["content-type"].startswith("multipart/mixed; boundary=batch_")
    urls = sent_urls(sent)
    assert urls[0].startswith(client.api_url + "RetrieveDuplicates(BusinessEntity=@b)?@b=")
    assert urls[1:] == [client.api_url + "contacts(x)", client.api_url + "WhoAmI"]
    assert client.stats.requests == 1 and client.batch_get([]) == []
    with pytest.raises(ValueError, match="at most 1000"):
        client.batch_get([("WhoAmI", None)] * 1001)


def test_a_failed_part_raises_what_a_single_get_would(server: ScriptServer, client: DataverseClient) -> None:
    gone = {"error": {"code": "0x80040217", "message": "contact With Id = a Does Not Exist"}}
    missing = (404, {"REQ_ID": "r-1"}, gone)
    server.script(answer((200, {}, {"value": []}), missing, (200, {}, {})))
    with pytest.raises(NotFoundError) as info:
        client.batch_get(CALLS)
    error = info.value
    assert str(error) == ("Dataverse refused GET contacts (HTTP 404 0x80040217): contact With Id = a Does Not Exist")
    assert error.status == 404 and error.code == "0x80040217" and error.request_id == "r-1"
    server.script(answer((200, {}, {"value": []}), missing,
                         (400, {}, {"error": {"code": "0x80040203", "message": "Bad\nparameter."}})))
    first, deleted, bad = client.batch_get(CALLS, return_errors=True)
    assert first == {"value": []} and isinstance(deleted, NotFoundError)
    assert type(bad) is DataverseError
    assert str(bad) == "Dataverse refused GET WhoAmI (HTTP 400 0x80040203): Bad parameter."


def test_a_throttled_part_sends_the_whole_batch_again(server: ScriptServer, client: DataverseClient) -> None:
    throttled = (429, {"Retry-After": "1"}, {"error": {"code": "0x80072321", "message": "Combined execution time"}})
    server.script(answer((200, {}, {"value": [1]}), throttled, (200, {}, {})),
                  answer((200, {}, {"value": [1]}), (200, {}, {"id": 2}), (200, {}, {})))
    started = time.monotonic()
    assert client.batch_get(CALLS) == [{"value": [1]}, {"id": 2}, {}]
    assert time.monotonic() - started >= 0.95 and len(server.received) == 2
    assert sent_urls(server.received[0]) == sent_urls(server.received[1])
    assert client.stats.throttled == 1 and client.stats.requests == 2


def test_a_throttled_or_failing_batch_is_retried_then_reported(server: ScriptServer, client: DataverseClient) -> None:
    server.script((429, {"Retry-After": "0.2"}, {"error": {"code": "0x80072322", "message": "Number of requests"}}),
                  (503, {}, {"error": {"code": "", "message": "busy"}}),
                  answer((200, {}, {}), (200, {}, {}), (200, {}, {})))
    assert client.batch_get(CALLS) == [{}, {}, {}]
    assert len(server.received) == 3
    unavailable: tuple[int, dict[str, str], Any] = (503, {}, {"error": {"code": "", "message": "Service unavailable"}})
    server.script(*[answer((200, {}, {}), unavailable, (200, {}, {}))] * 3)
    with pytest.raises(DataverseError) as info:
        client.batch_get(CALLS)
    assert info.value.status == 503 and len(server.received) == 6      # the first try and two retries


def test_answers_that_cannot_be_read_are_errors(server: ScriptServer, client: DataverseClient) -> None:
    server.script((200, {"Content-Type": "application/json"}, {"value": []}))
    with pytest.raises(DataverseError, match="cannot be read"):
        client.batch_get(CALLS)
    server.script(answer((200, {}, {})))
    with pytest.raises(DataverseError, match="answered 1 of the 3 requests"):
        client.batch_get(CALLS)
    server.script(answer((200, {}, {}), (200, {}, {}), (200, {}, {})))
    server.received.clear()
    bad_json = answer((200, {}, {}), (200, {}, {}), (200, {}, {}))
    server.script((200, bad_json[1], bad_json[2].replace(b"{}", b"{oops", 1)))
    client.batch_get(CALLS)
    with pytest.raises(DataverseError, match="not JSON"):
        client.batch_get(CALLS)
