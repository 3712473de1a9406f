"""planning/helpers.py: one small table per helper, each called as (result, target, subordinate, column).
Rows are plain dicts, None = empty (never NaN)."""

from __future__ import annotations

import pytest

from planning import helpers as mh


@pytest.mark.parametrize(("value", "empty"), [
    (None, True), ("", True), ("   ", True), ("x", False), (False, False), (0, False), (0.0, False), ([], False),
])
def test_is_empty(value: object, empty: bool) -> None:
    assert mh.is_empty(value) is empty


def test_is_boolean_and_current() -> None:
    assert mh.is_boolean(True) and mh.is_boolean(False) and not mh.is_boolean(1) and not mh.is_boolean(None)
    assert mh.current({"a": 2}, {"a": 1, "b": 3}, "a") == 2
    assert mh.current({}, {"a": 1}, "a") == 1
    assert mh.current({"a": None}, {"a": 1}, "a") is None  # a pending clear counts


@pytest.mark.parametrize(("a", "b", "text", "phone"), [
    ("Ann@Example.com ", "ann@example.com", True, True),
    ("+44 (0)20 7946-0000", "+4402079460000", False, True),
    ("020 7946 0000", "020 7946 0001", False, False),
    (None, "", True, True),      # two empties are the same
    (None, "x", False, False),
])
def test_same_text_and_same_phone(a: object, b: object, text: bool, phone: bool) -> None:
    assert mh.same_text(a, b) is text
    assert mh.same_phone(a, b) is phone


@pytest.mark.parametrize(("target", "result", "sub_val", "expected"), [
    ({"c": None}, {}, "new", {"c": "new"}),
    ({"c": ""}, {}, "new", {"c": "new"}),
    ({"c": "old"}, {}, "new", {}),
    ({"c": None}, {}, None, {}),
    ({"c": None}, {"c": "taken"}, "new", {"c": "taken"}),   # an earlier rule of this merge filled it
    ({}, {}, False, {"c": False}),
])
def test_fill_empty(target: dict, result: dict, sub_val: object, expected: dict) -> None:
    before = dict(result)
    assert mh.fill_empty(result, target, {"c": sub_val}, "c") is (expected != before)
    assert result == expected


@pytest.mark.parametrize(("target", "sub_val", "expected"), [
    ({"c": "old"}, "new", {"c": "new"}),
    ({"c": None}, "new", {"c": "new"}),
    ({"c": "same"}, "same", {}),
    ({"c": "old"}, None, {}),      # the subordinate has nothing: keep the target's
])
def test_take_subordinate(target: dict, sub_val: object, expected: dict) -> None:
    result: dict = {}
    assert mh.take_subordinate(result, target, {"c": sub_val}, "c") is bool(expected)
    assert result == expected


@pytest.mark.parametrize(("target_val", "sub_val", "expected"), [
    (False, True, {"f": True}),
    (None, True, {"f": True}),
    (True, False, {}),
    (True, True, {}),
    (None, False, {"f": False}),   # empty target takes No too
    (False, False, {}),
    (False, None, {}),
])
def test_true_wins(target_val: object, sub_val: object, expected: dict) -> None:
    result: dict = {}
    assert mh.true_wins(result, {"f": target_val}, {"f": sub_val}, "f") is bool(expected)
    assert result == expected


@pytest.mark.parametrize(("target_date", "sub_date", "expected"), [
    ("2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z", {"pref": 2}),   # subordinate contacted later
    ("2024-06-01T00:00:00Z", "2024-01-01T00:00:00Z", {}),
    ("2024-06-01T00:00:00Z", "2024-06-01T00:00:00Z", {}),            # same time: keep the target's
    (None, "2024-01-01T00:00:00Z", {"pref": 2}),                     # target never contacted
    ("2024-01-01T00:00:00Z", None, {}),
])
def test_newer_wins(target_date: str | None, sub_date: str | None, expected: dict) -> None:
    result: dict = {}
    target = {"pref": 1, "lastcontact": target_date}
    mh.newer_wins(result, target, {"pref": 2, "lastcontact": sub_date}, "pref", date_col="lastcontact")
    assert result == expected


E1, E2, E3 = mh.EMAIL_SLOTS


@pytest.mark.parametrize(("target", "result", "value", "slot", "expected"), [
    ({E1: "a@x.com"}, {}, "b@x.com", E2, {E2: "b@x.com"}),
    ({E1: "a@x.com", E2: "c@x.com"}, {}, "b@x.com", E3, {E3: "b@x.com"}),
    ({E1: "a@x.com", E2: "c@x.com", E3: "d@x.com"}, {}, "b@x.com", None, {}),   # all taken: nothing
    ({E1: "A@X.com"}, {}, "a@x.COM", None, {}),                                  # already the primary
    ({E1: "a@x.com", E3: "b@x.com"}, {}, "B@x.com", None, {}),                   # already in a slot
    ({E1: "a@x.com"}, {E2: "z@x.com"}, "b@x.com", E3, {E2: "z@x.com", E3: "b@x.com"}),  # slot 2 filled this merge
    ({E1: "a@x.com"}, {E2: "b@x.com"}, "b@x.com", None, {E2: "b@x.com"}),        # placed already this merge
    ({E1: "a@x.com"}, {}, None, None, {}),
])
def test_demote_to_slot(target: dict, result: dict, value: str | None, slot: str | None, expected: dict) -> None:
    assert mh.demote_to_slot(result, target, {E1: value}, E1) == slot
    assert result == expected


def test_demote_to_slot_for_phones_compares_digits_and_fills_an_empty_primary() -> None:
    result: dict = {}
    target = {"telephone1": "+44 20 7946 0000"}
    assert mh.demote_to_slot(result, target, {"telephone1": "+44 (20) 7946-0000"}, "telephone1", mh.PHONE_SLOTS,
                             same=mh.same_phone) is None
    assert mh.demote_to_slot(result, target, {"telephone1": "0161 000"}, "telephone1", mh.PHONE_SLOTS,
                             same=mh.same_phone) == "telephone2"
    empty_primary: dict = {}
    assert mh.demote_to_slot(empty_primary, {}, {E2: "a@x.com"}, E2) == E1  # first free slot: the primary


def test_address_columns_and_is_address() -> None:
    assert mh.address_columns("address2")[0] == "address2_line1" and len(mh.address_columns()) == 7
    assert mh.is_address("address1_postalcode") and mh.is_address("address3_city")
    assert not mh.is_address("address1_composite") and not mh.is_address("emailaddress1")
    assert mh.is_address("address1_county") and mh.is_address("address2_latitude")


def test_an_address_moves_whole_never_mixed_into_another() -> None:
    target = addr(postalcode="SW1A 1AA", city="London", line1="1 Mall")
    sub = {**addr(postalcode="75001", city="Paris", county="Ile-de-France", latitude=48.8)}
    result: dict = {}
    assert mh.move_address(result, target, sub)
    assert result == {"address2_postalcode": "75001", "address2_city": "Paris", "address2_county": "Ile-de-France",
                      "address2_latitude": 48.8}
    filled: dict = {}
    mh.fill_address(filled, addr(postalcode="75001"), sub)
    assert filled == {"address1_city": "Paris", "address1_county": "Ile-de-France", "address1_latitude": 48.8}


def addr(prefix: str = "address1", **parts: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in parts.items()}


@pytest.mark.parametrize(("a", "b", "same"), [
    (addr(postalcode="SW1A 1AA"), addr(postalcode="sw1a1aa"), True),
    (addr(postalcode="SW1A 1AA"), addr(postalcode="E1 6AN"), False),
    (addr(postalcode=None), addr(postalcode=None), False),   # unknown is not the same
    (addr(city="London"), addr(postalcode="E1 6AN"), False),
])
def test_same_postcode(a: dict, b: dict, same: bool) -> None:
    assert mh.same_postcode(a, b) is same


def test_has_address_sees_pending_results() -> None:
    assert mh.has_address(addr(city="Leeds"))
    assert not mh.has_address(addr(city="  "))
    assert not mh.has_address({}, "address2")
    assert mh.has_address({}, "address2", {"address2_line1": "1 Low Rd"})


def test_fill_address_fills_only_missing_parts() -> None:
    result: dict = {}
    target = addr(line1="1 High St", postalcode="SW1A 1AA")
    sub = addr(line1="1 High Street", city="London", postalcode="SW1A1AA", country="UK")
    assert mh.fill_address(result, target, sub)
    assert result == {"address1_city": "London", "address1_country": "UK"}


def test_move_address_to_a_slot_only_when_the_slot_is_empty() -> None:
    sub = addr(line1="9 Low Rd", city="Leeds", postalcode="LS1 1AA")
    result: dict = {}
    assert mh.move_address(result, addr(line1="1 High St"), sub, "address1", "address2")
    assert result == addr("address2", line1="9 Low Rd", city="Leeds", postalcode="LS1 1AA")
    taken: dict = {}
    assert not mh.move_address(taken, {"address2_city": "York"}, sub, "address1", "address2")
    assert taken == {}
    assert not mh.move_address({}, {}, {}, "address1", "address2")  # nothing to move
