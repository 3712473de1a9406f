"""Merges in `$batch`: one change set per merge, each atomic and independent of the others, each merge's
execution time counted."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.emulator.over_http import batch, batch_answers, changeset, http_part

C = "Microsoft.Dynamics.CRM.contact"


def _pair(dv: Any, n: int, **sub: Any) -> tuple[str, str]:
    target = dv.store.insert("contact", {"lastname": f"Target {n}", "createdon": "2020-01-01T00:00:00Z"})
    subordinate = dv.store.insert("contact", {"lastname": f"Sub {n}", "telephone1": f"+1 555 {n:04d}",
                                              "createdon": "2021-01-01T00:00:00Z", **sub})
    return target, subordinate


def _merge(target: str, subordinate: str, content_id: int = 1) -> str:
    body = {"Target": {"@odata.type": C, "contactid": target},
            "Subordinate": {"@odata.type": C, "contactid": subordinate},
            "UpdateContent": {"@odata.type": C, "telephone1": "from the merge"}, "PerformParentingChecks": False}
    return http_part("POST", "/api/data/v9.2/Merge", body, content_id)


def _merges(pairs: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    return batch([changeset(f"changeset_{i}", [_merge(t, s)]) for i, (t, s) in enumerate(pairs)])


def _merged(dv: Any, target: str, subordinate: str) -> bool:
    sub = dv.store.get("contact", subordinate)
    done = sub["statecode"] == 1 and sub["merged"] and sub["masterid"].id == target
    assert done == (dv.store.get("contact", target).get("telephone1") == "from the merge")
    return done


def test_change_sets_are_independent_a_refusal_undoes_only_its_own(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty")
    api = make_api(dv)
    ok1, refused, ok2 = _pair(dv, 1), _pair(dv, 2, statecode=1, statuscode=2), _pair(dv, 3)
    body, headers = _merges([ok1, refused, ok2])
    stopped = api.post("$batch", data=body, headers=headers)
    # documented: without odata.continue-on-error the batch ends at the failing change set
    assert stopped.status_code == 400
    answers = batch_answers(stopped.text)
    assert [s for s, _ in answers] == [204, 400]
    assert json.loads(answers[1][1])["error"]["code"] == "0x80045304"
    assert "changesetresponse_" in stopped.text.split("HTTP/1.1 400")[0]  # the first change set committed
    assert _merged(dv, *ok1) and not _merged(dv, *refused) and not _merged(dv, *ok2)

    ok3, refused2, ok4 = _pair(dv, 4), (_pair(dv, 5)[0],) * 2, _pair(dv, 6)  # refused2: a record with itself
    body, headers = _merges([ok3, refused2, ok4])
    go_on = api.post("$batch", data=body, headers={**headers, "Prefer": "odata.continue-on-error"})
    assert go_on.status_code == 200
    answers = batch_answers(go_on.text)
    assert [s for s, _ in answers] == [204, 400, 204]
    assert json.loads(answers[1][1])["error"]["code"] == "0x80045305"
    assert _merged(dv, *ok3) and _merged(dv, *ok4)
    assert dv.store.counters.merge_success[ok3[1]] == 1 and dv.store.counters.merge_success[ok4[1]] == 1


def test_a_change_set_with_a_merge_is_atomic(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty")
    api = make_api(dv)
    target, sub = _pair(dv, 7)
    other = dv.store.insert("contact", {"lastname": "Untouched"})
    body, headers = batch([changeset("changeset_atomic", [
        http_part("PATCH", f"contacts({other})", {"lastname": "Changed"}, 1),
        _merge(target, sub, 2),
        http_part("PATCH", f"contacts({other})", {"nosuchcolumn": 1}, 3),  # fails after the merge ran
    ])])
    resp = api.post("$batch", data=body, headers=headers)
    assert resp.status_code == 400 and [s for s, _ in batch_answers(resp.text)] == [400]
    assert "Content-ID: 3" in resp.text
    assert not _merged(dv, target, sub)  # the merge inside the failed change set was rolled back
    assert dv.store.get("contact", sub)["statecode"] == 0
    assert dv.store.get("contact", other)["lastname"] == "Untouched"
    assert dv.store.counters.merge_success[sub] == 0


def test_each_merge_in_a_batch_costs_its_execution_time(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", limits="60,100,0.5,52", merge_ms=200)
    api = make_api(dv)
    pairs = [_pair(dv, 10 + i) for i in range(3)]
    body, headers = _merges(pairs)
    started = time.monotonic()
    resp = api.post("$batch", data=body, headers=headers)
    assert time.monotonic() - started >= 0.6
    assert resp.status_code == 200 and [s for s, _ in batch_answers(resp.text)] == [204, 204, 204]
    assert all(_merged(dv, *p) for p in pairs)
    assert float(resp.headers["x-ms-ratelimit-time-remaining-xrm-requests"]) == 0.0  # 0.6 s > 0.5 s
    refused = api.get("WhoAmI")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "0x80072321"


def test_merges_spread_over_web_servers(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", limits="60,2,100,52", web_servers=3)
    api = make_api(dv)
    pairs = [_pair(dv, 20 + i) for i in range(6)]
    statuses = []
    for target, sub in pairs:
        body = {"Target": {"@odata.type": C, "contactid": target},
                "Subordinate": {"@odata.type": C, "contactid": sub}, "PerformParentingChecks": False}
        statuses.append(api.post("Merge", json=body).status_code)
        api.session.cookies.clear()
    assert statuses == [204] * 6  # 3 servers x 2 requests each: one server alone would refuse the third
    assert sorted(e.web_server for e in dv.store.counters.requests) == [0, 0, 1, 1, 2, 2]
    assert api.get("WhoAmI").status_code == 429
