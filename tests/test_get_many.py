"""DataverseClient.get_many against tests/script_server.py: records by id in bulk, chunks read at once."""

from __future__ import annotations

import threading
import time

import pytest
from builders import RecordingTokens
from script_server import Received, ScriptServer

from dataverse import (
    ClientSettings,
    DataverseClient,
)
from errors import DataverseError

OK: tuple[int, dict[str, str], dict] = (200, {}, {"value": []})


def test_get_many_fetches_records_in_bulk(server: ScriptServer, client: DataverseClient) -> None:
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(5)]

    def answer(r: Received) -> tuple[int, dict[str, str], dict]:
        wanted = r.query()["$filter"][0].split("[")[1].rstrip("])").replace("'", "").split(",")
        return (200, {}, {"value": [{"contactid": i} for i in wanted]})

    server.script(answer, answer, answer)
    rows = list(
        client.get_many("contacts", "contactid", [*ids, "{" + ids[0].upper() + "}"], ["fullname"], chunk_size=2)
    )
    assert [r["contactid"] for r in rows] == ids
    assert len(server.received) == 3
    assert {r.query()["$select"][0] for r in server.received} == {"contactid,fullname"}
    assert f"Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['{ids[0]}','{ids[1]}'])" in {
        r.query()["$filter"][0] for r in server.received
    }


def in_ids(r: Received) -> list[str]:
    return r.query()["$filter"][0].split("[")[1].rstrip("])").replace("'", "").split(",")


def test_get_many_reads_chunks_at_once_and_keeps_their_order(server: ScriptServer, tokens: RecordingTokens) -> None:
    """Each answer waits until all four chunk requests have arrived: sequential reads would never get there."""
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(8)]
    all_there = threading.Barrier(4, timeout=10)

    def answer(r: Received) -> tuple[int, dict[str, str], dict]:
        wanted = in_ids(r)
        all_there.wait()
        time.sleep(0.05 * (8 - int(wanted[0][-1])))  # the first chunk answers last
        return (200, {}, {"value": [{"contactid": i} for i in wanted]})

    server.script(*[answer] * 4)
    with DataverseClient(server.url, tokens, ClientSettings(read_workers=4)) as c:
        rows = list(c.get_many("contacts", "contactid", ids, chunk_size=2))
    assert [r["contactid"] for r in rows] == ids


def test_get_many_raises_a_failed_chunk_and_stops(server: ScriptServer, tokens: RecordingTokens) -> None:
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(40)]

    def answer(r: Received) -> tuple[int, dict[str, str], dict]:
        wanted = in_ids(r)
        if wanted[0] == ids[2]:
            return (400, {}, {"error": {"code": "0x80040203", "message": "bad chunk"}})
        return (200, {}, {"value": [{"contactid": i} for i in wanted]})

    server.script(*[answer] * 20)
    with (
        DataverseClient(server.url, tokens, ClientSettings(read_workers=2)) as c,
        pytest.raises(DataverseError, match="bad chunk"),
    ):
        list(c.get_many("contacts", "contactid", ids, chunk_size=2))
    assert len(server.received) < 20  # what was still queued was not sent
