"""Small named helpers to write merge logic with (`_create_merge_result` in prepare_duplicates.py).

One argument order for every helper that writes, so a rule reads the same whichever it uses:

    helper(result, target, subordinate, column_or_block, ...options) -> True when it wrote something

- `result`: the dict of columns to write on the target that your merge function is building. Helpers add
  to it and read it, so two rules of one merge never fight over the same empty slot;
- `target`: the target as it stands before this merge (earlier merges of the group applied);
- `subordinate`: the record being merged into it;
- then the column (`"jobtitle"`) or address block (`"address1"`) the helper works on.

Rows map column -> value, None meaning empty (never pandas NaN). The questions (`is_empty`, `same_text`,
`same_phone`, `has_address`, `same_postcode`, `current`) write nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from planning.targets import parse_when

Row = Mapping[str, Any]
Result = dict[str, Any]

EMAIL_SLOTS = ("emailaddress1", "emailaddress2", "emailaddress3")
PHONE_SLOTS = ("telephone1", "telephone2", "telephone3")
# The parts of an address block `address1_*`; composite columns are computed by Dataverse, never written.
ADDRESS_PARTS = ("line1", "line2", "line3", "city", "stateorprovince", "postalcode", "country")
_NON_DIGITS = re.compile(r"\D")
_BLOCKS = {f"address{n}": tuple(f"address{n}_{part}" for part in ADDRESS_PARTS) for n in (1, 2, 3)}
_ADDRESS_BLOCK = re.compile(r"^address\d+_(?!composite$|addressid$)")  # computed / key columns are not parts


def is_empty(value: object) -> bool:
    """None or a blank string. False and 0 are values, not empty."""
    # isspace() instead of strip(): no new string per call (this runs for every column of every merge)
    return value is None or (isinstance(value, str) and (not value or value.isspace()))


def is_boolean(value: object) -> bool:
    """True for a Yes/No (Boolean) column's value: the Web API gives those as JSON true/false."""
    return isinstance(value, bool)


def has_column(row: Row, col: str) -> bool:
    """Whether `col` is a column of the row's table. A planner row knows its table's columns, so helpers that
    walk standard columns (address3_* on a lead) skip the ones a table lacks; a plain dict could hold any."""
    columns = getattr(row, "columns", None)
    return columns is None or col in row or col in columns


def _value(row: Row, col: str) -> Any:
    """A standard column's value, None when the row's table lacks it (plain dict.get: no typo guard needed
    for the helpers' own column names, and it is the hot path of every merge)."""
    return dict.get(row, col) if isinstance(row, dict) else row.get(col)


def current(result: Result, target: Row, col: str) -> Any:
    """The target's value in `col` once `result` is written: result's value if it has one, else the target's."""
    return result[col] if col in result else target.get(col)


def same_text(a: object, b: object) -> bool:
    """Equal ignoring case and surrounding spaces (emails, names). Two empties are equal."""
    if is_empty(a) or is_empty(b):
        return is_empty(a) and is_empty(b)
    return str(a).strip().casefold() == str(b).strip().casefold()


def same_phone(a: object, b: object) -> bool:
    """Equal by their digits only: '+44 (0)20 7946-0000' and '+4402079460000' are the same number."""
    if is_empty(a) or is_empty(b):
        return is_empty(a) and is_empty(b)
    return _NON_DIGITS.sub("", str(a)) == _NON_DIGITS.sub("", str(b))


def fill_empty(result: Result, target: Row, subordinate: Row, col: str) -> bool:
    """Target empty, subordinate set: take the subordinate's value."""
    sub_val = subordinate.get(col)
    if is_empty(sub_val) or not is_empty(current(result, target, col)):
        return False
    result[col] = sub_val
    return True


def take_subordinate(result: Result, target: Row, subordinate: Row, col: str) -> bool:
    """Take the subordinate's value whenever it has one that differs from the target's."""
    sub_val = subordinate.get(col)
    if is_empty(sub_val) or current(result, target, col) == sub_val:
        return False
    result[col] = sub_val
    return True


def true_wins(result: Result, target: Row, subordinate: Row, col: str) -> bool:
    """Yes/No flags (do not email, is VIP, ...): Yes on either record wins; an empty target takes No too."""
    if subordinate.get(col) is True and current(result, target, col) is not True:
        result[col] = True
        return True
    return fill_empty(result, target, subordinate, col)


def newer_wins(result: Result, target: Row, subordinate: Row, col: str, date_col: str) -> bool:
    """Take the subordinate's `col` when its `date_col` is later than the target's (or the target has none).

    Example: the preferred contact method of whichever record was contacted last (`new_lastcontacteddate`).
    """
    sub_when = parse_when(subordinate.get(date_col))
    if sub_when is None:
        return False
    target_when = parse_when(current(result, target, date_col))
    if target_when is not None and sub_when <= target_when:
        return False
    return take_subordinate(result, target, subordinate, col)


def demote_to_slot(
    result: Result,
    target: Row,
    subordinate: Row,
    col: str,
    slots: Sequence[str] = EMAIL_SLOTS,
    *,
    same: Callable[[object, object], bool] = same_text,
) -> str | None:
    """Put the subordinate's `col` in the first empty slot of the target; the slot used, or None.

    Nothing is written when the value is already in any slot (compared with `same`: case-insensitive by
    default, `same_phone` for phone numbers), or when every slot is taken.
    """
    sub_val = subordinate.get(col)
    if is_empty(sub_val):
        return None
    if any(same(current(result, target, c), sub_val) for c in slots):
        return None
    for slot in slots:
        if is_empty(current(result, target, slot)):
            result[slot] = sub_val
            return slot
    return None


# -- addresses --------------------------------------------------------------------------------------
def address_columns(block: str = "address1") -> tuple[str, ...]:
    """The part columns of an address block: address1_line1, ..., address1_country."""
    columns = _BLOCKS.get(block)
    return columns if columns is not None else tuple(f"{block}_{part}" for part in ADDRESS_PARTS)


def is_address(col: str) -> bool:
    """True for any column of an address block (address1_city, address2_latitude, address3_county, ...):
    an address moves or fills as a whole, never a field of one address mixed into another."""
    return _ADDRESS_BLOCK.match(col) is not None


def block_columns(row: Row, block: str = "address1") -> list[str]:
    """Every column of the block on `row` (the standard parts and any other, e.g. county or latitude)."""
    head = block + "_"
    standard = [c for c in address_columns(block) if has_column(row, c)]
    return sorted({*standard, *(c for c in row if c.startswith(head) and is_address(c))})


def has_address(row: Row, block: str = "address1", result: Result | None = None) -> bool:
    """Whether any part of the block is filled (on `row`, or on the target once `result` is written)."""
    pending = result or {}
    for col in address_columns(block):
        value = pending[col] if col in pending else _value(row, col)
        if value is not None and not (isinstance(value, str) and not value.strip()):  # not is_empty(value)
            return True
    return False


def _postcode(value: object) -> str:
    return "".join(str(value).split()).upper() if not is_empty(value) else ""


def same_postcode(target: Row, subordinate: Row, block: str = "address1") -> bool:
    """Both records' blocks have a postcode and it is the same, ignoring spaces and case ('sw1a 1aa' == 'SW1A1AA')."""
    column = f"{block}_postalcode"
    pa = _postcode(_value(target, column))
    return bool(pa) and pa == _postcode(_value(subordinate, column))


def fill_address(result: Result, target: Row, subordinate: Row, block: str = "address1") -> bool:
    """Fill each empty part of the target's block with the subordinate's part of the same block."""
    wrote = False
    for col in block_columns(subordinate, block):
        if has_column(target, col):
            wrote = fill_empty(result, target, subordinate, col) or wrote
    return wrote


def move_address(result: Result, target: Row, subordinate: Row, source: str = "address1",
                 slot: str = "address2") -> bool:
    """Copy the subordinate's `source` block into the target's `slot` block, only if that block is empty."""
    if has_address(target, slot, result) or not has_address(subordinate, source):
        return False
    for col in block_columns(subordinate, source):
        value = subordinate.get(col)
        destination = slot + col[len(source):]  # address1_county -> address2_county
        if not is_empty(value) and has_column(target, destination):
            result[destination] = value
    return True
