"""prepare_duplicates.py, the file users edit: the default merge rules (one table each), and the examples
in its comments compile and run as a user would paste them in."""

from __future__ import annotations

import inspect
import re
import textwrap
from typing import Any

import pytest
from builders import S1, T, contact

import prepare_duplicates as prep
from planning import targets


def merge_result(target: dict, sub: dict) -> dict:
    return prep._create_merge_result(dict(target), dict(sub), sorted(target.keys() | sub.keys()))


def test_the_file_opens_on_what_users_edit() -> None:
    lines = inspect.getsource(prep).splitlines()
    assert any(line.startswith("fields_to_ignore = [") for line in lines[:60])
    assert any(line.startswith("def _create_merge_result(") for line in lines[:60])
    assert "taken from the SUBORDINATE" in (prep.__doc__ or "")


# -- the default rules, one table each ------------------------------------------------------------------------
@pytest.mark.parametrize(("target", "sub", "expected"), [
    ({"firstname": None}, {"firstname": "Ann"}, {"firstname": "Ann"}),           # target empty: take it
    ({"firstname": "Ann"}, {"firstname": None}, {}),                              # subordinate empty: nothing
    ({"jobtitle": "CEO"}, {"jobtitle": "Chair"}, {"jobtitle": "Chair"}),          # anything else: subordinate's
    ({"jobtitle": "CEO"}, {"jobtitle": "CEO"}, {}),
])
def test_default_fill_and_other_fields(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


E = ("emailaddress1", "emailaddress2", "emailaddress3")


@pytest.mark.parametrize(("target", "sub", "expected"), [
    ({E[0]: "a@x.com"}, {E[0]: "b@x.com"}, {E[1]: "b@x.com"}),
    ({E[0]: "a@x.com", E[1]: "c@x.com"}, {E[0]: "b@x.com"}, {E[2]: "b@x.com"}),
    ({E[0]: "a@x.com", E[1]: "c@x.com", E[2]: "d@x.com"}, {E[0]: "b@x.com"}, {}),
    ({E[0]: "A@X.com"}, {E[0]: "a@x.com"}, {}),                                  # same email, other case
    ({E[0]: "a@x.com", E[2]: "B@x.com"}, {E[0]: "b@x.com"}, {}),                 # already in a slot
    ({E[0]: None}, {E[0]: "b@x.com"}, {E[0]: "b@x.com"}),                        # target has none
    ({E[0]: "a@x.com"}, {E[0]: "b@x.com", E[1]: "c@x.com"}, {E[1]: "b@x.com", E[2]: "c@x.com"}),
])
def test_default_emails(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


@pytest.mark.parametrize(("target", "sub", "expected"), [
    ({"telephone1": "020 7946 0000"}, {"telephone1": "0161 496 0000"}, {"telephone2": "0161 496 0000"}),
    ({"telephone1": "020 7946 0000", "telephone2": "1"}, {"telephone1": "2"}, {"telephone3": "2"}),
    ({"telephone1": "020 7946 0000"}, {"telephone1": "(020) 7946-0000"}, {}),     # same digits
    ({"telephone1": None}, {"telephone1": "2"}, {"telephone1": "2"}),
])
def test_default_phones(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


@pytest.mark.parametrize(("target", "sub", "expected"), [
    ({"donotemail": False}, {"donotemail": True}, {"donotemail": True}),
    ({"donotemail": True}, {"donotemail": False}, {}),                            # Yes wins
    ({"new_isvip": None}, {"new_isvip": False}, {"new_isvip": False}),            # custom flag, empty target
    ({"new_ismember": False}, {"new_ismember": True}, {"new_ismember": True}),
])
def test_default_booleans(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


def a1(**parts: str | None) -> dict:
    return {f"address1_{k}": v for k, v in parts.items()}


@pytest.mark.parametrize(("target", "sub", "expected"), [
    (a1(line1="1 High St", postalcode="SW1A 1AA"), a1(city="London", postalcode="sw1a1aa"),
     {"address1_city": "London"}),                                                 # same postcode: fill parts
    (a1(line1="1 High St", postalcode="SW1A 1AA"), a1(line1="9 Low Rd", postalcode="LS1 1AA"),
     {"address2_line1": "9 Low Rd", "address2_postalcode": "LS1 1AA"}),           # different: to address2
    ({**a1(line1="1 High St", postalcode="SW1A 1AA"), "address2_city": "York"}, a1(line1="9 Low Rd",
                                                                                  postalcode="LS1 1AA"), {}),
    ({}, a1(line1="9 Low Rd", city="Leeds"), {"address1_line1": "9 Low Rd", "address1_city": "Leeds"}),
    (a1(line1="1 High St"), {"address2_line1": "2 Side St"}, {"address2_line1": "2 Side St"}),
])
def test_default_addresses(target: dict, sub: dict, expected: dict) -> None:
    assert merge_result(target, sub) == expected


# -- the article's customisations, as commented in the user part, compile and run ----------------------------
def example(name: str) -> str:
    source = inspect.getsource(prep)
    match = re.search(rf"# --- example: {re.escape(name)}\n(.*?)# --- end", source, re.S)
    assert match, f"example '{name}' is missing from prepare_duplicates.py"
    lines = [re.sub(r"^(\s*)# ?", r"\1", line) for line in match.group(1).splitlines()]
    return textwrap.dedent("\n".join(lines))


def loop_rule(body: str) -> Any:
    """A merge function whose per-column loop is the example (as the user would paste it in)."""
    code = ("def rule(target_row, subordinate_row, columns):\n    result = {}\n    for col in columns:\n"
            "        sub_value = subordinate_row.get(col)\n" + textwrap.indent(body, " " * 8)
            + "\n    return result\n")
    namespace = dict(vars(prep))
    exec(compile(code, "<example>", "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace["rule"]


def test_example_third_email_slot() -> None:
    rule = loop_rule(example("third email slot"))
    assert rule({E[0]: "a@x.com", E[1]: None}, {E[0]: "b@x.com"}, [E[0]]) == {E[1]: "b@x.com"}
    assert rule({E[0]: "a@x.com", E[1]: "c@x.com", E[2]: None}, {E[0]: "b@x.com"}, [E[0]]) == {E[2]: "b@x.com"}


def test_example_newer_wins_by_date() -> None:
    rule = loop_rule(example("newer wins by a date field"))
    col, date = "preferredcontactmethodcode", "new_lastcontacteddate"
    target = {col: 1, date: "2024-01-01T00:00:00Z"}
    assert rule(target, {col: 2, date: "2024-06-01T00:00:00Z"}, [col]) == {col: 2}
    assert rule(target, {col: 2, date: "2023-06-01T00:00:00Z"}, [col]) == {}


def test_example_address_completeness() -> None:
    code = ("def rule(target_row, subordinate_row, columns):\n    result = {'kept': True}\n"
            + textwrap.indent(example("address completeness"), "    ") + "\n    return {}\n")
    namespace = dict(vars(prep))
    exec(compile(code, "<example>", "exec"), namespace)  # noqa: S102
    assert namespace["rule"]({}, a1(line1="1 High St", city="Leeds"), []) == {"kept": True}
    assert namespace["rule"]({}, a1(line1="1 High St", city="Leeds", postalcode="LS1"), []) == {}


def test_example_own_target_strategy() -> None:
    namespace = dict(vars(prep))
    exec(compile(example("own target strategy"), "<example>", "exec"), namespace)  # noqa: S102
    try:
        chosen = targets.get_strategy("most_emails")([contact(T, emailaddress1="a"), contact(S1, emailaddress1="a",
                                                                                          emailaddress2="b")])
        assert chosen["contactid"] == S1
    finally:
        targets.register_strategy("most_emails")(targets.get_strategy("oldest_record"))
        targets.STRATEGIES.pop("most_emails")


def test_default_rule_never_mixes_two_addresses() -> None:
    target = {"address1_line1": "1 Mall", "address1_city": "London", "address1_postalcode": "SW1A 1AA"}
    sub = {"address1_line1": "2 Rue", "address1_city": "Paris", "address1_postalcode": "75001",
           "address1_county": "Ile-de-France", "address1_latitude": 48.8, "address3_city": "Lyon"}
    columns = sorted(set(target) | set(sub) | {"address2_county", "address2_latitude"})
    result = prep._create_merge_result(dict(target), dict(sub), columns)
    assert not any(c.startswith("address1_") for c in result)
    assert result["address2_county"] == "Ile-de-France" and result["address2_latitude"] == 48.8
    assert result["address3_city"] == "Lyon"       # an empty address3 on the target is filled
