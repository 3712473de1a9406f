"""Rules as a person reads them: what is matched, exact or partial, blanks, and a warning when not strict."""

from __future__ import annotations

from collections.abc import Callable

from auth import StaticTokenProvider
from dataverse import DataverseClient
from dataverse.duplicate_rules import Condition, Rule, describe, published_rules
from dataverse_emulator import EmulatorHandle
from dataverse_emulator.datasets import Builder, add_rule


def rule(*conditions: Condition, exclude_inactive: bool = True) -> Rule:
    return Rule("r", "Same e-mail", "contact", "contact", False, exclude_inactive, conditions)


def test_a_strict_rule_reads_plainly() -> None:
    lines = describe(rule(Condition("emailaddress1", "emailaddress1", 0, None, False)))
    assert lines[1] == "  - emailaddress1 vs emailaddress1: exact match, blanks ignored"   # one condition: always
    assert "inactive records excluded" in lines[2] and not any(line.startswith("  !") for line in lines)


def test_partial_matches_and_included_inactive_records_are_flagged() -> None:
    lines = describe(rule(Condition("lastname", "lastname", 1, 3, False), Condition("telephone1", "telephone1", 0,
                                                                                    None, False),
                          exclude_inactive=False))
    assert "same first 3 characters, blank = blank counts as a match" in lines[1]
    assert "inactive records INCLUDED" in lines[3]
    assert lines[-1].startswith("  ! Not strict")


def test_published_rules_come_from_dataverse_with_their_conditions(
        make_emulator: Callable[..., EmulatorHandle]) -> None:
    handle = make_emulator("empty")
    with handle.store.lock:
        add_rule(Builder(handle.store, 9), "Accounts by name start", "account", [("name", 1, 5)], published=True)
    client = DataverseClient(handle.url, StaticTokenProvider("t"))
    contact_rules = published_rules(client, "contact")
    assert {r.name for r in contact_rules} == {"Contacts with the same e-mail", "Contacts with the same business phone"}
    assert all(r.strict and r.exclude_inactive for r in contact_rules)
    partial = {r.name: r for r in published_rules(client, "account")}["Accounts by name start"]
    assert partial.conditions[0].operator == 1 and not partial.strict
    assert published_rules(client, "lead") == []        # the lead rule is not published
