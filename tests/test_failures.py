"""failures: one case per class, by code, by message text, by HTTP status."""

from __future__ import annotations

import pytest

from merging.failure_classes import HINTS, classify, normalise_code

MARKETING = ("Disassociation cannot be performed between an entity of type list and an entity of type contact.; "
             "[Microsoft.Dynamics.Marketing.Plugins: "
             "Microsoft.Dynamics.Marketing.Plugins.PreDisassociateEntitiesPlugin]")


@pytest.mark.parametrize(("status", "code", "message", "expected"), [
    (403, "0x80045301", "Merge is not allowed: caller does not have the privilege or access.", "privilege"),
    (400, "0x80040265", "SecLib::AccessCheckEx2 failed. Returned hr = -2147187962 on task 1234", "privilege"),
    (400, "0x80045316", "Merge warning: sub-entity will be differently parented.", "parenting"),
    (400, "0x80045317", "Merge warning: sub-entity might lose parenting.", "parenting"),
    (400, "0x80045302", "Merge cannot be performed on sub-entity that has active quote.", "active_quote"),
    (400, "0x80045304", "sub-entity:contact-1 is deactive", "inactive"),
    (400, "", "master entity:account-2 is deactive", "inactive"),
    (400, "0x80045300", "Merge could create cyclical parenting.", "hierarchy_loop"),
    (400, "", "Loop exists in the contacts hierarchy.", "hierarchy_loop"),
    (400, "0x80040265", MARKETING, "marketing_plugin"),
    (400, "0x8003F450", "Child cases having different parent case can not be merged.", "child_cases"),
    (400, "0x8003f454", "A Parent Case cannot have more than 100 child cases.", "child_cases"),
    (429, "0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
     "throttling"),
    (429, "", "", "throttling"),
    (404, "0x80040217", "contact With Id = 1 Does Not Exist", "not_found"),
    (400, "0x80045305", "Merge cannot be performed on master and sub-entities that are identical.", "same_record"),
    (400, "0x80040203", "This type: quote is not supported with merge operation", "unsupported"),
    (400, "0x80060888", "An undeclared property 'new_x' which only has property annotations in the payload",
     "invalid_update"),
    (400, "0x80040203", "UpdateContent's type 'account' does not match the Target's type 'contact'.",
     "invalid_update"),
    (400, "0x80040217", "'new_x' does not exist on type 'Microsoft.Dynamics.CRM.contact'", "invalid_update"),
    (503, "", "Service Unavailable", "transient"),
    (None, "", "Connection reset by peer", "transient"),
    (400, "0x80040265", "A plugin said no.", "other"),
])
def test_classify(status: int | None, code: str, message: str, expected: str) -> None:
    kind, hint = classify(status, code, message)
    assert kind == expected
    assert hint == HINTS[kind] and "\n" not in hint


def test_parenting_hint_says_what_to_do() -> None:
    _, hint = classify(400, "0x80045316", "")
    assert hint == "Rerun step 4 with parenting checks off, or give both records the same parent first."


@pytest.mark.parametrize(("code", "expected"), [
    ("0x80045301", "0x80045301"), ("0X8003F450", "0x8003f450"), ("80045301", "0x80045301"),
    ("-2147200255", "0x80045301"), (-2147200255, "0x80045301"), ("", ""), (None, ""), ("weird", "weird"),
])
def test_normalise_code(code: object, expected: str) -> None:
    assert normalise_code(code) == expected  # type: ignore[arg-type]


def test_decimal_codes_classify_like_hex() -> None:
    assert classify(400, "-2147200254", "")[0] == "active_quote"


@pytest.mark.parametrize("message", [
    "The attribute 'createdon' of entity 'contact' cannot be updated: it is not valid for update.",
    "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.contact'.",
    "Cannot convert the literal 'abc' to the expected type 'Edm.Int32'.",
])
def test_payload_problems_are_invalid_update(message: str) -> None:
    assert classify(400, "0x80060888", message)[0] == "invalid_update"
