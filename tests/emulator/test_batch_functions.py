"""Function calls as `$batch` parts: RetrieveDuplicates with parameter aliases exactly as outside a batch, each
part answering its own error, the 1000-part limit, and how a batch counts against the limits."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from tests.emulator.over_http import batch, batch_answers, changeset, http_part

PAGING = {"PageNumber": 1, "Count": 50}


def _groups(dv: Any, sizes: list[int]) -> list[list[str]]:
    out = []
    for g, size in enumerate(sizes):
        out.append([dv.store.insert("contact", {"lastname": f"Batch {g}", "emailaddress1": f"batch{g}@x.example",
                                                "createdon": f"2020-01-0{1 + i}T00:00:00Z"}) for i in range(size)])
    return out


def _retrieve_url(rid: str, encoded: bool = True) -> str:
    business = json.dumps({"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": rid})
    paging = json.dumps(PAGING)
    if encoded:
        business, paging = quote(business), quote(paging)
    return (f"RetrieveDuplicates(BusinessEntity=@b,MatchingEntityName=@m,PagingInfo=@p)"
            f"?@b={business}&@m='contact'&@p={paging}")


def test_retrieve_duplicates_in_a_batch_answers_as_outside(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty")
    api = make_api(dv)
    groups = _groups(dv, [2, 3, 4])
    bases = [g[0] for g in groups]
    outside = [api.get(_retrieve_url(rid)).json() for rid in bases]
    parts = [http_part("GET", _retrieve_url(rid)) for rid in bases]                     # relative, encoded
    parts.append(http_part("GET", "/api/data/v9.2/" + _retrieve_url(bases[1], encoded=False)))  # raw JSON
    parts.append(http_part("GET", dv.api_url + _retrieve_url(bases[2])))                # absolute URL
    body, headers = batch(parts)
    resp = api.post("$batch", data=body, headers=headers)
    assert resp.status_code == 200, resp.text
    answers = batch_answers(resp.text)
    assert [status for status, _ in answers] == [200] * 5
    inside = [json.loads(text) for _, text in answers]
    assert inside[:3] == outside and inside[3] == outside[1] and inside[4] == outside[2]
    assert [sorted(r["contactid"] for r in a["value"]) for a in inside[:3]] == [sorted(g[1:]) for g in groups]


def test_a_failing_part_stops_the_batch_unless_continue_on_error(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty")
    api = make_api(dv)
    (first, second) = _groups(dv, [2, 2])
    missing = "00000000-0000-0000-0000-00000000abcd"
    parts = [http_part("GET", _retrieve_url(first[0])), http_part("GET", _retrieve_url(missing)),
             http_part("GET", "RetrieveDuplicates(BusinessEntity=@b,MatchingEntityName=@m,PagingInfo=@p)?@m='contact'"),
             http_part("GET", _retrieve_url(second[0]))]
    body, headers = batch(parts)
    stopped = api.post("$batch", data=body, headers=headers)
    # documented: without the preference the batch ends at the first failure and answers with its status
    assert stopped.status_code == 404
    assert [s for s, _ in batch_answers(stopped.text)] == [200, 404]
    go_on = api.post("$batch", data=body, headers={**headers, "Prefer": "odata.continue-on-error"})
    assert go_on.status_code == 200 and go_on.headers["Preference-Applied"] == "odata.continue-on-error"
    answers = batch_answers(go_on.text)
    assert [s for s, _ in answers] == [200, 404, 400, 200]
    assert json.loads(answers[1][1])["error"]["code"] == "0x80040217"
    assert "'@b' has no value" in json.loads(answers[2][1])["error"]["message"]
    assert [r["contactid"] for r in json.loads(answers[3][1])["value"]] == [second[1]]


def test_functions_and_queries_mix_with_change_sets(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty")
    api = make_api(dv)
    (pair,) = _groups(dv, [2])
    fetch = quote("'<fetch><entity name=\"contact\"><attribute name=\"lastname\" /></entity></fetch>'")
    body, headers = batch([
        http_part("GET", _retrieve_url(pair[0])),
        changeset("cs_1", [http_part("PATCH", f"contacts({pair[1]})", {"telephone1": "+1 555 0100"}, 1)]),
        http_part("GET", f"FetchXmlToQueryExpression(FetchXml=@x)?@x={fetch}"),
        http_part("GET", f"contacts({pair[1]})?$select=telephone1"),
        http_part("GET", "WhoAmI()"),
    ])
    resp = api.post("$batch", data=body, headers=headers)
    answers = batch_answers(resp.text)
    assert [s for s, _ in answers] == [200, 204, 200, 200, 200]
    assert json.loads(answers[2][1])["Query"]["EntityName"] == "contact"
    assert json.loads(answers[3][1])["telephone1"] == "+1 555 0100"  # parts run in order


def test_up_to_1000_function_calls_per_batch(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty")
    api = make_api(dv)
    groups = _groups(dv, [2] * 500)
    ids = [rid for g in groups for rid in g]
    body, headers = batch([http_part("GET", _retrieve_url(rid)) for rid in ids])
    resp = api.post("$batch", data=body, headers=headers, timeout=60)
    answers = batch_answers(resp.text)
    assert resp.status_code == 200 and len(answers) == 1000 and {s for s, _ in answers} == {200}
    partner = {g[0]: g[1] for g in groups} | {g[1]: g[0] for g in groups}
    assert [json.loads(text)["value"][0]["contactid"] for _, text in answers] == [partner[r] for r in ids]
    body, headers = batch([http_part("GET", _retrieve_url(rid)) for rid in ids + ids[:1]])
    over = api.post("$batch", data=body, headers=headers)
    assert over.status_code == 400
    assert over.json()["error"]["message"] == ("The current batch message contains too many parts. Only batch "
                                               "messages with a maximum number of '1000' query operations, "
                                               "including changeset operations, are allowed.")
    body, headers = batch([changeset("cs_big", [http_part("PATCH", f"contacts({ids[0]})", {"telephone1": "1"})]
                                     * 1001)])
    over = api.post("$batch", data=body, headers=headers)
    assert over.status_code == 400
    assert over.json()["error"]["message"] == ("The current change set contains too many operations. A maximum "
                                               "number of '1000' operations are allowed in a change set.")


def _slow_retrieve(dv: Any, seconds: float) -> None:
    real = dv.app.functions["RetrieveDuplicates"]

    def retrieve_slowly(ctx: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        time.sleep(seconds)  # each call's own server time, as a real RetrieveDuplicates takes some
        return real(ctx, params)

    dv.app.functions["RetrieveDuplicates"] = retrieve_slowly


def test_a_batch_counts_every_parts_execution_time(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", limits="60,100,0.5,52")
    api = make_api(dv)
    (pair,) = _groups(dv, [2])
    _slow_retrieve(dv, 0.1)
    body, headers = batch([http_part("GET", _retrieve_url(pair[0]))] * 3)
    resp = api.post("$batch", data=body, headers=headers)
    assert resp.status_code == 200 and len(batch_answers(resp.text)) == 3
    assert 0.1 < float(resp.headers["x-ms-ratelimit-time-remaining-xrm-requests"]) <= 0.2  # 0.3 s of 0.5 s spent
    assert api.get("WhoAmI").status_code == 200
    assert api.post("$batch", data=body, headers=headers).status_code == 200  # admitted: 0.3 s < 0.5 s
    refused = api.get("WhoAmI")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "0x80072321"


def test_a_batch_of_function_calls_is_one_request(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", limits="60,2,100,52")
    api = make_api(dv)
    (pair,) = _groups(dv, [2])
    body, headers = batch([http_part("GET", _retrieve_url(pair[0]))] * 50)
    resp = api.post("$batch", data=body, headers=headers)
    assert resp.status_code == 200 and len(batch_answers(resp.text)) == 50
    assert resp.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "1"
    assert api.get("WhoAmI").status_code == 200
    refused = api.get("WhoAmI")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "0x80072322"
