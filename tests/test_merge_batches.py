"""Merges in `$batch` (issue 16.4): the change-set wire format, DataverseClient.batch_post against a scripted
server (a part's refusal, a throttled part, an answer that stops early), and step 4 with batches against the
emulator over HTTP: everything merged once, one refused merge failing only itself, a lost batch answer settled
merge by merge, a throttled batch sent again whole, and batches for quick merges only."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from merge_fixtures import assert_all_done_once, make_run, seed_groups
from merge_worker import kill_at_random_points
from script_server import Received, ScriptServer

import merge_duplicates as md
from auth import StaticTokenProvider
from dataverse import ClientSettings, DataverseClient
from dataverse.batch import changeset_body, read_batch
from dataverse_emulator import EmulatorHandle
from dataverse_emulator.options import Faults, Limits
from dataverse_emulator.store import Ref
from errors import DataverseError, OutcomeUnknownError
from merging.batches import MergeSender
from runfolder.journal import read_journal

FAST = ClientSettings(connect_timeout=2, read_timeout=20, backoff_base=0.01, max_retries=2, max_retry_after=5)
C = "Microsoft.Dynamics.CRM.contact"

# A change set's answer, nested, then a failed change set's answer, alone (the shapes of Microsoft's examples).
CHANGESET_ANSWER = (
    "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_a\r\n\r\n"
    "--changesetresponse_a\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    "Content-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n"
    "--changesetresponse_a--\r\n"
    "--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    "Content-ID: 2\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json; odata.metadata=minimal\r\n\r\n"
    '{"error":{"code":"0x80045305","message":"The record cannot be merged with itself."}}\r\n'
    "--batchresponse_1--\r\n"
)
BATCH_TYPE = "multipart/mixed; boundary=batchresponse_1"


def parts(*statuses: int, retry_after: str = "0") -> tuple[int, dict[str, str], bytes]:
    """A 200 $batch answer: a change set answered 204, or a failed one (its error part alone)."""
    text = ""
    for n, status in enumerate(statuses, start=1):
        if status == 204:
            text += (f"--b\r\nContent-Type: multipart/mixed; boundary=cs{n}\r\n\r\n--cs{n}\r\nContent-Type: "
                     f"application/http\r\nContent-ID: {n}\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--cs{n}--\r\n")
            continue
        code = {429: "0x80072322", 400: "0x80045305", 503: "0x80040216"}[status]
        extra = f"Retry-After: {retry_after}\r\n" if status == 429 else ""
        text += (f"--b\r\nContent-Type: application/http\r\nContent-ID: {n}\r\n\r\nHTTP/1.1 {status} X\r\n{extra}"
                 f"Content-Type: application/json\r\n\r\n" + json.dumps({"error": {"code": code, "message": "m"}})
                 + "\r\n")
    return 200, {"Content-Type": "multipart/mixed; boundary=b"}, (text + "--b--\r\n").encode()


def sent_bodies(received: Received) -> list[dict[str, Any]]:
    """The JSON bodies of the change sets in a $batch request, in order."""
    return [json.loads(m) for m in re.findall(r"type=entry\r\nAccept: application/json\r\n\r\n(.*?)\r\n--changeset",
                                              received.body.decode(), re.S)]


@pytest.fixture
def client(server: ScriptServer) -> Iterator[DataverseClient]:
    with DataverseClient(server.url, StaticTokenProvider("t"), FAST) as c:
        yield c


# -- the wire format and batch_post ----------------------------------------------------------------------
def test_each_request_goes_in_a_change_set_of_its_own() -> None:
    body, content_type = changeset_body([("POST", "https://org/api/data/v9.2/Merge", b'{"a": 1}'),
                                         ("POST", "https://org/api/data/v9.2/Merge", b'{"a": 2}')])
    text = body.decode()
    outer = content_type.split("boundary=")[1]
    assert text.count(f"--{outer}\r\nContent-Type: multipart/mixed; boundary=changeset_") == 2
    assert text.endswith(f"--{outer}--\r\n") and "Content-ID: 1\r\n" in text and "Content-ID: 2\r\n" in text
    assert "POST https://org/api/data/v9.2/Merge HTTP/1.1\r\nContent-Type: application/json; type=entry" in text
    assert len(re.findall(r"--changeset_[0-9a-f-]+--\r\n", text)) == 2


def test_a_change_set_is_answered_nested_or_alone() -> None:
    done, refused = read_batch(BATCH_TYPE, CHANGESET_ANSWER.encode(), changesets=True)
    assert done.status == 204 and done.body == b""
    assert refused.status == 400 and json.loads(refused.body)["error"]["code"] == "0x80045305"


def test_batch_post_gives_each_part_its_own_answer(server: ScriptServer, client: DataverseClient) -> None:
    server.script(parts(204, 400, 204))
    answers = client.batch_post("Merge", [{"n": 1}, {"n": 2}, {"n": 3}])
    assert answers[0] is None and answers[2] is None
    assert isinstance(answers[1], DataverseError) and answers[1].code == "0x80045305"
    assert not isinstance(answers[1], OutcomeUnknownError) and "POST Merge" in answers[1].message
    (sent,) = server.received
    assert sent.path.endswith("/$batch") and sent.headers["prefer"] == "odata.continue-on-error"
    assert sent_bodies(sent) == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_a_throttled_part_alone_is_sent_again(server: ScriptServer, client: DataverseClient) -> None:
    server.script(parts(204, 429, 204), parts(204))
    assert client.batch_post("Merge", [{"n": 1}, {"n": 2}, {"n": 3}]) == [None, None, None]
    first, again = server.received
    assert sent_bodies(again) == [{"n": 2}]  # the parts that ran are not sent again
    assert client.stats.throttled == 1 and client.stats.throttled_requests == 1


def test_a_throttled_batch_is_sent_again_whole(server: ScriptServer, client: DataverseClient) -> None:
    server.script((429, {"Retry-After": "0"}, {"error": {"code": "0x80072321", "message": "time"}}), parts(204, 204))
    assert client.batch_post("Merge", [{"n": 1}, {"n": 2}]) == [None, None]
    refused, again = server.received
    assert sent_bodies(refused) == sent_bodies(again) == [{"n": 1}, {"n": 2}]  # a 429 on the batch: none of it ran
    assert client.stats.throttled == 1 and client.stats.throttled_requests == 0


def test_a_5xx_part_or_a_part_left_unanswered_is_unknown(server: ScriptServer, client: DataverseClient) -> None:
    server.script(parts(503, 204))
    answers = client.batch_post("Merge", [{"n": 1}, {"n": 2}, {"n": 3}])
    assert isinstance(answers[0], OutcomeUnknownError) and answers[1] is None
    assert isinstance(answers[2], OutcomeUnknownError) and "stops before this one" in answers[2].message
    server.script((200, {"Content-Type": "multipart/mixed; boundary=b"}, b"--b\r\ngarbage"))
    with pytest.raises(OutcomeUnknownError, match="cannot be read"):
        client.batch_post("Merge", [{"n": 1}])
    server.script((400, {}, {"error": {"code": "0x80060888", "message": "bad batch"}}))  # refused whole: none ran
    refused = client.batch_post("Merge", [{"n": 1}, {"n": 2}])
    assert all(isinstance(a, DataverseError) and not isinstance(a, OutcomeUnknownError) for a in refused)


def test_the_sender_sizes_batches_from_how_long_merges_take(client: DataverseClient) -> None:
    sender = MergeSender(client)
    assert sender.size() == 1                       # nothing known yet: one request per merge
    sender._observe(0.02, 1, client.stats.throttled)
    assert sender.size() == 10                      # quick merges: batches of at most 10
    sender._observe(1.0, 10, client.stats.throttled)
    assert 1 < sender.size() < 10                   # slower ones: fewer per batch (about 0.25 s of them)
    for _ in range(30):
        sender._observe(0.3, 1, client.stats.throttled)
    assert sender.size() == 1                       # Merges of 0.25 s or more go alone: time binds, not requests
    client.stats.add(throttled=1)
    sender._observe(60.0, 1, client.stats.throttled - 1)
    assert sender._merge_s is not None and sender._merge_s < 1  # a round trip that waited out a 429 is not learnt
    assert MergeSender(client, 1).size() == 1 and MergeSender(client, 7).size() == 7
    with pytest.raises(ValueError):
        MergeSender(client, 0)


# -- step 4 with batches, over HTTP against the emulator ---------------------------------------------------
def run_step(handle: EmulatorHandle, root: Path, planned: list[Any], client: DataverseClient | None = None,
             **kw: Any) -> md.MergeResult:
    run = make_run(root, handle.url, planned)
    settings = md.MergeSettings(entity="contact", **kw)
    client = client or DataverseClient(handle.url, StaticTokenProvider("t"), FAST)
    return md.run(client, run, md.load(client, run, settings), settings)


def merge_posts(handle: EmulatorHandle) -> tuple[int, int]:
    """(single POST Merge requests, POST $batch requests) the emulator served (not those it throttled)."""
    log = [e for e in handle.store.counters.requests if e.method == "POST" and e.status != 429]
    return sum(1 for e in log if e.path.endswith("/Merge")), sum(1 for e in log if e.path.endswith("/$batch"))


def assert_all_merged_once(handle: EmulatorHandle, planned: list[Any]) -> None:
    for p in planned:
        sub = handle.store.get("contact", p.subordinate_id)
        assert sub["statecode"] == 1 and sub["masterid"] == Ref("contact", p.target_id), p.subordinate_id
        assert handle.store.counters.merge_success[p.subordinate_id] == 1


def test_batched_merges_merge_everything_once_in_plan_order(make_emulator: Callable[..., EmulatorHandle],
                                                             tmp_path: Path) -> None:
    dv = make_emulator("empty", merge_ms=5)
    planned = seed_groups(dv.store, 20, 3)  # chains of 3 into each target
    result = run_step(dv, tmp_path / "run", planned, batch_size=5, workers=10)
    assert (result.merged, result.failed, result.skipped) == (60, 0, 0)
    assert_all_merged_once(dv, planned)
    for p in planned[2::3]:
        assert dv.store.get("contact", p.target_id)["description"] == "merged 3 of 3"  # the chain's last wrote last
    singles, batches = merge_posts(dv)
    assert singles == 0 and batches == result.batches and result.batched == 60 and 60 / 5 <= batches < 60
    # every merge's snapshot and "sending" line are on disk before its batch went, its result after
    events = read_journal(tmp_path / "run" / "update" / "journal.jsonl")
    order = [(e["event"], e.get("subordinate_id")) for e in events]
    for p in planned:
        seen = [kind for kind, sub in order if sub == p.subordinate_id]
        assert seen == ["snapshot", "sending", "result"], seen
    assert any("$batch requests" in line for line in result.summary_lines())


def test_one_refused_merge_in_a_batch_fails_only_itself(make_emulator: Callable[..., EmulatorHandle],
                                                        tmp_path: Path) -> None:
    dv = make_emulator("empty")
    planned = seed_groups(dv.store, 8, 1)
    denied = planned[3].subordinate_id
    dv.app.options = replace(dv.app.options, faults=Faults(deny_merge=frozenset({denied})))  # no privilege on it
    result = run_step(dv, tmp_path / "run", planned, batch_size=8, workers=8)
    assert (result.merged, result.failed) == (7, 1) and merge_posts(dv)[0] == 0
    assert_all_merged_once(dv, [p for p in planned if p.subordinate_id != denied])
    assert dv.store.get("contact", denied)["statecode"] == 0
    (failure,) = [e for e in read_journal(tmp_path / "run" / "update" / "journal.jsonl")
                  if e["event"] == "result" and e["status"] == "failed"]
    assert failure["subordinate_id"] == denied and failure["failure_class"] == "privilege"


class _LosesFirstBatchAnswer(DataverseClient):
    """Sends the first $batch of merges, then behaves as if the connection dropped before its answer."""

    lost = 0

    def batch_post(self, path: str, bodies: Any) -> list[Any]:
        answers = super().batch_post(path, bodies)
        if not self.lost:
            self.lost = len(bodies)
            raise OutcomeUnknownError("No answer to POST $batch (the connection dropped): the outcome is unknown.")
        return answers


def test_a_lost_batch_answer_is_settled_merge_by_merge(make_emulator: Callable[..., EmulatorHandle],
                                                       tmp_path: Path) -> None:
    dv = make_emulator("empty", merge_ms=5)
    planned = seed_groups(dv.store, 12, 1)
    client = _LosesFirstBatchAnswer(dv.url, StaticTokenProvider("t"), FAST)
    result = run_step(dv, tmp_path / "run", planned, client=client, batch_size=4, workers=4)
    assert client.lost >= 1 and result.failed == 0
    assert (result.merged, result.already_merged) == (12 - client.lost, client.lost)
    assert_all_merged_once(dv, planned)
    assert max(dv.store.counters.merge_attempts.values()) == 1  # none was sent again: Dataverse was asked
    settled = [e for e in read_journal(tmp_path / "run" / "update" / "journal.jsonl")
               if e["event"] == "result" and e["status"] == "already_merged"]
    assert len(settled) == client.lost and all("answer was lost" in e["reason"] for e in settled)


def test_dropped_batches_and_throttling_still_merge_everything_once(make_emulator: Callable[..., EmulatorHandle],
                                                                     tmp_path: Path) -> None:
    limits = Limits(window_s=2, max_requests=12, max_exec_s=100, max_concurrent=10)
    dv = make_emulator("empty", merge_ms=5, seed=5, limits=limits, faults="drop=0.1")
    planned = seed_groups(dv.store, 40, 2)
    client = DataverseClient(dv.url, StaticTokenProvider("t"), FAST)
    result = run_step(dv, tmp_path / "run", planned, client=client, batch_size=6, workers=12)
    assert result.failed == 0 and result.merged + result.already_merged == 80
    assert_all_merged_once(dv, planned)
    assert client.stats.throttled > 0 and dv.store.counters.throttled > 0  # batches were refused and sent again


@pytest.mark.parametrize(("merge_ms", "batched"), [(2, True), (300, False)])
def test_quick_merges_go_in_batches_slow_ones_alone(make_emulator: Callable[..., EmulatorHandle], tmp_path: Path,
                                                    merge_ms: int, batched: bool) -> None:
    dv = make_emulator("empty", merge_ms=merge_ms)
    planned = seed_groups(dv.store, 40, 1)
    result = run_step(dv, tmp_path / "run", planned, snapshots=False)
    assert result.merged == 40
    singles, batches = merge_posts(dv)
    assert singles >= 1 and (batches >= 1) is batched and result.batched == 40 - singles
    assert_all_merged_once(dv, planned)


@pytest.mark.slow
def test_sigkill_with_batches_then_rerun(make_emulator: Callable[..., EmulatorHandle], tmp_path: Path) -> None:
    dv = make_emulator("empty", merge_ms=20)
    planned = seed_groups(dv.store, 40, 3)  # 120 merges, chains of 3
    run = make_run(tmp_path / "run", dv.url, planned)
    kills = kill_at_random_points(dv.url, run, ["8", "4"], rounds=4, seed=20240607)
    assert kills >= 3
    assert_all_done_once(dv, run, planned)
    assert merge_posts(dv)[0] == 0  # every Merge went in a $batch
