"""Step 3's merge logic: yours to edit. Nothing here writes to Dataverse; rerun step 3 after each edit.

`_create_merge_result(target_row, subordinate_row, columns)` runs once per merge and returns the columns to
write on the target (the Merge's UpdateContent). Rows map column -> value, None when empty; a lookup reads
as `_parentcustomerid_value` (its id). A name that is no column of the table raises KeyError, with
`row["x"]` and `row.get("x")` alike: a typo never reads as an empty value. `target_row` is the target as
the group's earlier merges leave it. Return only what should change; `fields_to_ignore` and columns
Dataverse cannot update are dropped anyway; None clears a column (not a lookup); a pandas NaN writes nothing.

By default a value the two records hold differently is taken from the SUBORDINATE (the record merged
away): with `oldest_record` as the target choice, the newer record's job title replaces the older one's.
Emails and phones are kept in spare slots instead, yes/no flags keep a yes, addresses move as whole blocks.

Helpers (planning/helpers.py) all take `(result, target_row, subordinate_row, column)` in that order and
return True when they wrote something: fill_empty, take_subordinate, true_wins, newer_wins(..., date_col),
demote_to_slot(..., slots), fill_address(..., block), move_address(..., source, slot); questions: is_empty,
same_text, same_phone, has_address, same_postcode. Check the result in prepare/audit_records/.
"""

from __future__ import annotations

from planning import step
from planning.helpers import (  # noqa: F401  (all yours to use)
    EMAIL_SLOTS,
    PHONE_SLOTS,
    current,
    demote_to_slot,
    fill_address,
    fill_empty,
    has_address,
    is_address,
    is_boolean,
    is_empty,
    move_address,
    newer_wins,
    same_phone,
    same_postcode,
    same_text,
    take_subordinate,
    true_wins,
)
from planning.targets import register_strategy  # noqa: F401  (for a target choice of your own, see the end)

# Columns never written to the target: it keeps its own value. Logical names (ownerid, not _ownerid_value).
fields_to_ignore = [
    "statecode", "statuscode", "ownerid", "owningbusinessunit", "owninguser", "owningteam",
    "createdon", "createdby", "createdonbehalfby", "modifiedon", "modifiedby", "modifiedonbehalfby",
    "overriddencreatedon", "versionnumber", "importsequencenumber", "merged", "masterid",
    "fullname", "yomifullname", "address1_composite", "address2_composite", "address3_composite",
    "address1_addressid", "address2_addressid", "address3_addressid", "processid", "stageid", "traversedpath",
    "transactioncurrencyid", "exchangerate", "timezoneruleversionnumber", "utcconversiontimezonecode",
]


def _create_merge_result(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
    """The columns to write on the target for this merge: {column: new value}.

    columns: the columns this merge may write (with a value on either record, updatable, not ignored), A-Z.
    """
    result: dict = {}
    for col in columns:
        sub_value = subordinate_row.get(col)
        if is_empty(sub_value) or sub_value == target_row.get(col) or is_address(col):
            continue  # nothing to bring over; addresses are handled as whole blocks below

        # Example 1 (the article's "third email slot", written out by hand): emailaddress2, else emailaddress3.
        # --- example: third email slot
        # if col == "emailaddress1" and not same_text(sub_value, target_row.get("emailaddress1")):
        #     if target_row.get("emailaddress2") is None:
        #         result["emailaddress2"] = sub_value
        #     elif target_row.get("emailaddress3") is None:
        #         result["emailaddress3"] = sub_value
        #     continue
        # --- end

        # Example 2: take the preferred contact method of whichever record was contacted last.
        # --- example: newer wins by a date field
        # if col == "preferredcontactmethodcode":
        #     newer_wins(result, target_row, subordinate_row, col, date_col="new_lastcontacteddate")
        #     continue
        # --- end

        if col in EMAIL_SLOTS:
            demote_to_slot(result, target_row, subordinate_row, col, EMAIL_SLOTS)
        elif col in PHONE_SLOTS:
            demote_to_slot(result, target_row, subordinate_row, col, PHONE_SLOTS, same=same_phone)
        elif is_boolean(sub_value):
            true_wins(result, target_row, subordinate_row, col)
        else:
            take_subordinate(result, target_row, subordinate_row, col)  # fills an empty target too

    # Example 3: only bring an address over when the subordinate's is complete enough.
    # --- example: address completeness
    # parts = [c for c in ("address1_line1", "address1_city", "address1_postalcode") if subordinate_row.get(c)]
    # if len(parts) < 3:
    #     return result  # too sketchy: keep the target's address as it is
    # --- end

    if has_address(subordinate_row, "address1"):
        if not has_address(target_row, "address1") or same_postcode(target_row, subordinate_row, "address1"):
            fill_address(result, target_row, subordinate_row, "address1")
        else:
            move_address(result, target_row, subordinate_row, "address1", "address2")
    for block in ("address2", "address3"):
        if has_address(subordinate_row, block) and (
                not has_address(target_row, block, result) or same_postcode(target_row, subordinate_row, block)):
            fill_address(result, target_row, subordinate_row, block)
    return result


# Target choice: step 3 asks which strategy picks the record that stays: oldest_record, newest_record,
# most_complete or most_recently_modified (planning/targets.py). Add your own and choose it by its name:
# --- example: own target strategy
# @register_strategy("most_emails")
# def most_emails(records: list[dict]) -> dict:
#     return max(records, key=lambda r: sum(1 for c in EMAIL_SLOTS if r.get(c)))
# --- end


# ---- Not for editing: step 3 itself lives in planning/step.py; this hands it the logic above. ----------------
def run(client: step.DataverseClient, run: step.RunFolder, settings: step.PrepareSettings) -> step.PrepareResult:
    """Run step 3 with this file's merge logic (see planning/step.py)."""
    return step.run(client, run, settings, merge_fn=_create_merge_result, ignore=fields_to_ignore)
