"""The runaway-group guard: which rules a pair meets (as duplicate detection evaluates a rule), which groups
are flagged, and end to end: a chain of 12 records joined through two rules is flagged by step 2, left out by
step 3, and planned with --allow-large-groups (or when the user says so in the menu)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dataverse.duplicate_rules import Condition, Rule
from dataverse_emulator import EmulatorHandle
from main import main
from planning.group_guard import flag_groups, gather_evidence, rule_matches
from runfolder.state import GroupFlag

EMAIL = Rule("r1", "Same e-mail", "contact", "contact", False, True, (Condition("emailaddress1", "emailaddress1", 0,
                                                                                   None, True),))
PHONE = Rule("r2", "Same phone", "contact", "contact", False, True, (Condition("telephone1", "telephone1", 0, None,
                                                                                 True),))
FIRST3 = Rule("r3", "Same first 3 of the last name", "contact", "contact", True, True,
              (Condition("lastname", "lastname", 1, 3, False), Condition("_parentcustomerid_value", "parentcustomerid",
                                                                        0, None, False)))


@pytest.mark.parametrize(("rule", "a", "b", "match"), [
    (EMAIL, {"emailaddress1": "Ann@X.com"}, {"emailaddress1": "ann@x.com"}, True),      # case-insensitive
    (EMAIL, {"emailaddress1": None}, {"emailaddress1": None}, False),                   # blanks never match
    (FIRST3, {"lastname": "Smith", "_parentcustomerid_value": None}, {"lastname": "Smythe"}, False),  # case/first 3
    (FIRST3, {"lastname": "Smith"}, {"lastname": "Smiley"}, True),                      # blank = blank counts here
    (FIRST3, {"lastname": "smith"}, {"lastname": "Smiley"}, False),                     # case-sensitive rule
])
def test_rule_matches_as_detection_does(rule: Rule, a: dict, b: dict, match: bool) -> None:
    assert rule_matches(rule, a, b) is match


def test_a_chain_through_two_rules_and_a_large_group_are_flagged() -> None:
    records = {f"c{n}": {"emailaddress1": f"e{n // 2}", "telephone1": f"p{(n + 1) // 2}"} for n in range(12)}
    pairs = [(f"c{n}", f"c{n + 1}") for n in range(11)]
    same = {"s0": {"emailaddress1": "x"}, "s1": {"emailaddress1": "x"}, "s2": {"emailaddress1": "x"}}
    evidence = gather_evidence([sorted(records), sorted(same), ["a", "b"]],
                               [*pairs, ("s0", "s1"), ("s1", "s2")], lambda i: {**records, **same}[i], [EMAIL, PHONE])
    flagged = flag_groups(evidence, max_size=10)
    assert [(f.size, f.flags) for f in flagged] == [(12, (GroupFlag.LARGE, GroupFlag.SEVERAL_RULES))]
    assert {names for _, _, names in flagged[0].pairs} == {("Same e-mail",), ("Same phone",)}
    assert flag_groups(evidence, max_size=20)[0].flags == (GroupFlag.SEVERAL_RULES,)   # decided again, no reads


def cli(work: Path, *argv: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), stdin=io.StringIO(stdin), stdout=out, work_dir=work), out.getvalue()


def test_a_chain_of_12_is_flagged_left_out_and_planned_when_allowed(
        make_emulator: Callable[..., EmulatorHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dv = make_emulator("empty", job_seconds=0.1)
    chain = [dv.store.insert("contact", {"lastname": f"Chain{n}", "emailaddress1": f"c{n // 2}@chain.example",
                                         "telephone1": f"+1 555 010{(n + 1) // 2:02d}"}) for n in range(12)]
    pair = [dv.store.insert("contact", {"lastname": "Pair", "emailaddress1": "pair@x.example",
                                        "telephone1": f"+1 555 02{n}"}) for n in range(2)]
    monkeypatch.setenv("ACCESS_TOKEN", "t")
    (tmp_path / ".env").write_text(f"ENVIRONMENT_URI={dv.url}\nAUTH_MODE=access_token\n", encoding="utf-8")
    code, out = cli(tmp_path, "detect", "--entity", "contact", "--view", "Active Contacts for Duplicate Checking",
                    "--wait")
    job = out.split("detection job ")[1].split()[0]
    base = ("--entity", "contact", "--folder", "run")
    code, out = cli(tmp_path, "group", *base, "--job-id", job)
    assert code == 0 and "flagged" in out and "12 records and joined through different rules" in out, out
    doc = json.loads((tmp_path / "run" / "group" / "duplicate_groups.json").read_text(encoding="utf-8"))
    assert doc["flagged"][0]["size"] == 12 and doc["flagged"][0]["pairs_total"] >= 11
    code, out = cli(tmp_path, "prepare", *base)
    assert code == 0 and "1 groups with more than 10 records were left out" in out, out
    plan = (tmp_path / "run" / "prepare" / "merges.csv").read_text(encoding="utf-8-sig")
    assert pair[0] in plan or pair[1] in plan
    assert not any(c in plan for c in chain)
    code, out = cli(tmp_path, "prepare", *base, "--allow-large-groups")
    assert code == 0 and "14 merges" not in out
    plan = (tmp_path / "run" / "prepare" / "merges.csv").read_text(encoding="utf-8-sig")
    assert sum(1 for c in chain if c in plan) == 12                       # 11 subordinates and their target
