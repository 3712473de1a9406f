"""Why a Merge failed, in one word, and what to do about it in one line. Pure.

`classify(status, code, message)` matches Dataverse's error code first, then the message text (some
refusals share a generic code or none), then the HTTP status. The classes match the pre-flight codes
where both exist, so step 4 can compare what prepare predicted with what happened.
"""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    """Why a merge failed. The first ones match pre-flight codes; the last three come from step 4 itself."""

    PRIVILEGE = "privilege"
    PARENTING = "parenting"
    ACTIVE_QUOTE = "active_quote"
    INACTIVE = "inactive"
    HIERARCHY_LOOP = "hierarchy_loop"
    MARKETING_PLUGIN = "marketing_plugin"
    CHILD_CASES = "child_cases"
    THROTTLING = "throttling"
    NOT_FOUND = "not_found"
    SAME_RECORD = "same_record"
    UNSUPPORTED = "unsupported"
    INVALID_UPDATE = "invalid_update"
    TRANSIENT = "transient"
    OTHER = "other"
    MERGED_ELSEWHERE = "merged_elsewhere"      # the subordinate turned out merged into another record
    OUTCOME_UNKNOWN = "outcome_unknown"        # sent, no answer, and Dataverse could not tell
    WORKAROUND_FAILED = "workaround_failed"    # the marketing-list workaround was refused before the merge


(PRIVILEGE, PARENTING, ACTIVE_QUOTE, INACTIVE, HIERARCHY_LOOP, MARKETING_PLUGIN, CHILD_CASES, THROTTLING, NOT_FOUND,
 SAME_RECORD, UNSUPPORTED, INVALID_UPDATE, TRANSIENT, OTHER, MERGED_ELSEWHERE, OUTCOME_UNKNOWN,
 WORKAROUND_FAILED) = FailureClass

HINTS = {
    PRIVILEGE: "Give the signed-in user Read, Write, Share and Append To on both records (and Append/Write on "
               "their related rows), or run as a user who has them.",
    PARENTING: "Rerun step 4 with parenting checks off, or give both records the same parent first.",
    ACTIVE_QUOTE: "Close or revise the subordinate's active quotes (or make the target their customer), then rerun.",
    INACTIVE: "One of the records is inactive: reactivate it, or leave this pair out and rerun step 2.",
    HIERARCHY_LOOP: "Change the parent in your merge logic (or on the records) so the target is not its own "
                    "ancestor, then rerun steps 3 and 4.",
    MARKETING_PLUGIN: "Remove the subordinate from its marketing lists, add the target to the same lists, then rerun.",
    CHILD_CASES: "Cases with different parent cases, or over 100 child cases together, cannot merge: fix the "
                 "parent cases first.",
    THROTTLING: "Dataverse asked us to slow down: rerun step 4 later, or with fewer parallel merges.",
    NOT_FOUND: "A record no longer exists (deleted or merged elsewhere): rerun steps 2 and 3 for fresh data.",
    SAME_RECORD: "The target and subordinate are the same record: rerun step 3.",
    UNSUPPORTED: "Only account, contact, lead and incident can be merged.",
    INVALID_UPDATE: "UpdateContent has a column or value Dataverse refuses: fix _create_merge_result or "
                    "fields_to_ignore in prepare_duplicates.py and rerun step 3.",
    TRANSIENT: "Dataverse or the network failed for a moment: rerun step 4 (finished merges are skipped).",
    OTHER: "See the error message; rerun step 4 after fixing its cause (finished merges are skipped).",
    MERGED_ELSEWHERE: "The subordinate is already merged into another record: check that merge in Dynamics.",
    OUTCOME_UNKNOWN: "Run step 4 again: it asks Dataverse whether the merge took effect before sending it again.",
    WORKAROUND_FAILED: "Moving the subordinate's marketing-list memberships was refused: see the error, fix it "
                       "(privileges on the lists?) and rerun step 4.",
}

_CODES = {
    "0x80045301": PRIVILEGE,
    "0x80045316": PARENTING, "0x80045317": PARENTING, "0x80090441": PARENTING, "0x80090442": PARENTING,
    "0x80045302": ACTIVE_QUOTE,
    "0x80045304": INACTIVE,
    "0x80045300": HIERARCHY_LOOP,
    "0x80045305": SAME_RECORD,
    "0x80040217": NOT_FOUND,
    "0x80072321": THROTTLING, "0x80072322": THROTTLING, "0x80072326": THROTTLING,
    "0x8003f450": CHILD_CASES, "0x8003f453": CHILD_CASES, "0x8003f454": CHILD_CASES,
    "0x80044331": INVALID_UPDATE,  # "A validation error occurred" (a value too long, of the wrong type, ...)
}

# Message fragments (lower case), checked in this order.
_TEXTS = (
    ("disassociation cannot be performed between an entity of type list", MARKETING_PLUGIN),
    ("marketing.plugins", MARKETING_PLUGIN),
    ("seclib::accesscheckex2", PRIVILEGE),
    ("does not have the privilege", PRIVILEGE),
    ("not supported with merge operation", UNSUPPORTED),
    ("is deactive", INACTIVE),
    ("entity that is inactive", INACTIVE),
    ("sub-entity might lose parenting", PARENTING),
    ("differently parented", PARENTING),
    ("parented differently", PARENTING),
    ("loop exists in the contacts hierarchy", HIERARCHY_LOOP),
    ("would create a loop", HIERARCHY_LOOP),
    ("cyclical parenting", HIERARCHY_LOOP),
    ("has active quote", ACTIVE_QUOTE),
    ("sub-entities that are identical", SAME_RECORD),
    ("child cases", CHILD_CASES),
    ("does not exist", NOT_FOUND),
    ("not valid for update", INVALID_UPDATE),
    ("undeclared property", INVALID_UPDATE),
    ("does not exist on type", INVALID_UPDATE),
    ("invalid property", INVALID_UPDATE),
    ("could not find a property named", INVALID_UPDATE),
    ("cannot convert the literal", INVALID_UPDATE),
    ("error identified in payload", INVALID_UPDATE),
    ("odata.bind", INVALID_UPDATE),
    ("updatecontent", INVALID_UPDATE),
)


def normalise_code(code: str | int | None) -> str:
    """'0x80045301', '80045301' or the signed decimal '-2147200255' -> '0x80045301' (lower case)."""
    text = str(code or "").strip().lower()
    if len(text) == 8 and all(c in "0123456789abcdef" for c in text):  # hex without its 0x
        return "0x" + text
    if text.lstrip("-").isdigit():
        return f"0x{int(text) & 0xFFFFFFFF:08x}"
    return text


def classify(status: int | None, code: str, message: str) -> tuple[FailureClass, str]:
    """(class, one-line hint) for a failed Merge: Dataverse code first, then message text, then HTTP status."""
    kind = _CODES.get(normalise_code(code))
    if kind is None:
        text = (message or "").lower()
        kind = next((k for fragment, k in _TEXTS if fragment in text), None)
    if kind is None:
        kind = _by_status(status, code)
    # "does not exist" for a column (not a record) is a payload problem, even when it comes with a 404-ish text
    if kind == NOT_FOUND and "does not exist on type" in (message or "").lower():
        kind = INVALID_UPDATE
    return kind, HINTS[kind]


def _by_status(status: int | None, code: str) -> FailureClass:
    if status == 429:
        return THROTTLING
    if status is None or status >= 500:
        return TRANSIENT
    if status == 404:
        return NOT_FOUND
    if status == 403:
        return PRIVILEGE
    if status == 400 and normalise_code(code) in ("0x80040203", "0x80060888", "0x80048d19"):
        return INVALID_UPDATE
    return OTHER
