"""Each table's states and status reasons, and the rules for changing them by Update.

One table drives the store's defaults, `PATCH` of `statecode`/`statuscode`, the State/Status option sets in
metadata and the FormattedValue labels. Values come from Microsoft's table reference (StateCode and
StatusCode options; research/settled-2026-11.md Q7 for contact and account).

Rules (settled Q7): a pair is checked as a pair; `statecode` alone takes that state's default status;
`statuscode` alone is checked against the record's current state; a refused pair is 0x80048408 with the
platform's message ("2 is not a valid status code for state code AccountState.Active on account with Id
..."), or "5 is not a valid status code on account" when the value is in no state at all. Some state changes
need their own message in Dataverse (Win/Lose/Close/Qualify); `PATCH` to those answers a 400 naming the message.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ServiceError

INVALID_STATE_CODE = "0x80048408"


@dataclass(frozen=True)
class State:
    value: int
    label: str
    default_status: int
    statuses: tuple[tuple[int, str], ...]
    invariant: str = ""

    @property
    def invariant_name(self) -> str:
        return self.invariant or self.label.replace(" ", "")


def _s(value: int, label: str, statuses: dict[int, str], default: int | None = None) -> State:
    return State(value, label, default if default is not None else next(iter(statuses)), tuple(statuses.items()))


_ACTIVE = (_s(0, "Active", {1: "Active"}), _s(1, "Inactive", {2: "Inactive"}))
_ACTIVITY = (_s(0, "Open", {1: "Open"}), _s(1, "Completed", {2: "Completed"}), _s(2, "Canceled", {3: "Canceled"}))

STATES: dict[str, tuple[State, ...]] = {
    "contact": _ACTIVE,
    "account": _ACTIVE,
    "lead": (_s(0, "Open", {1: "New", 2: "Contacted"}), _s(1, "Qualified", {3: "Qualified"}),
             _s(2, "Disqualified", {4: "Lost", 5: "Cannot Contact", 6: "No Longer Interested", 7: "Canceled"})),
    "incident": (_s(0, "Active", {1: "In Progress", 2: "On Hold", 3: "Waiting for Details", 4: "Researching"}),
                 _s(1, "Resolved", {5: "Problem Solved", 1000: "Information Provided"}),
                 _s(2, "Canceled", {6: "Canceled", 2000: "Merged"})),
    "quote": (_s(0, "Draft", {1: "In Progress"}), _s(1, "Active", {2: "In Progress", 3: "Open"}),
              _s(2, "Won", {4: "Won"}), _s(3, "Closed", {5: "Lost", 6: "Canceled", 7: "Revised"})),
    "opportunity": (_s(0, "Open", {1: "In Progress", 2: "On Hold"}), _s(1, "Won", {3: "Won"}),
                    _s(2, "Lost", {4: "Canceled", 5: "Out-Sold"})),
    "task": (_s(0, "Open", {2: "Not Started", 3: "In Progress", 4: "Waiting on someone else", 7: "Deferred"}),
             _s(1, "Completed", {5: "Completed"}), _s(2, "Canceled", {6: "Canceled"})),
    "phonecall": (_s(0, "Open", {1: "Open"}), _s(1, "Completed", {2: "Made", 4: "Received"}),
                  _s(2, "Canceled", {3: "Canceled"})),
    "email": (_s(0, "Open", {1: "Draft", 8: "Failed"}),
              _s(1, "Completed", {2: "Completed", 3: "Sent", 4: "Received", 6: "Pending Send", 7: "Sending"}),
              _s(2, "Canceled", {5: "Canceled"})),
    "appointment": (_s(0, "Open", {1: "Free", 2: "Tentative"}), _s(1, "Completed", {3: "Completed"}),
                    _s(2, "Canceled", {4: "Canceled"}), _s(3, "Scheduled", {5: "Busy", 6: "Out of Office"})),
    "list": (_s(0, "Active", {0: "Active"}), _s(1, "Inactive", {1: "Inactive"})),
    "savedquery": _ACTIVE,
    "userquery": _ACTIVE,
    "duplicaterule": (_s(0, "Inactive", {0: "Unpublished", 1: "Publishing"}), _s(1, "Active", {2: "Published"})),
    "asyncoperation": (_s(0, "Ready", {0: "Waiting For Resources"}), _s(1, "Suspended", {10: "Waiting"}),
                       _s(2, "Locked", {20: "In Progress", 21: "Pausing", 22: "Canceling"}),
                       _s(3, "Completed", {30: "Succeeded", 31: "Failed", 32: "Canceled"})),
}
_FALLBACK = _ACTIVE

# (table, target state) -> the message Dataverse requires for that change (Update cannot make it).
SPECIAL_MESSAGES: dict[tuple[str, int], str] = {
    ("incident", 1): "CloseIncident",
    ("opportunity", 1): "WinOpportunity",
    ("opportunity", 2): "LoseOpportunity",
    ("quote", 2): "WinQuote",
    ("quote", 3): "CloseQuote",
    ("lead", 1): "QualifyLead",
}
# (table, status) -> who sets it (Update cannot).
RESERVED_STATUSES: dict[tuple[str, int], str] = {("incident", 2000): "Merge"}


def states(entity: str) -> tuple[State, ...]:
    return STATES.get(entity, _FALLBACK)


def state(entity: str, value: int) -> State | None:
    return next((s for s in states(entity) if s.value == value), None)


def default_pair(entity: str) -> tuple[int, int]:
    first = states(entity)[0]
    return first.value, first.default_status


def state_label(entity: str, value: int) -> str:
    found = state(entity, value)
    return found.label if found is not None else str(value)


def status_label(entity: str, value: int) -> str:
    for s in states(entity):
        for number, label in s.statuses:
            if number == value:
                return label
    return str(value)


def enum_name(entity: str, schema_name: str, value: int) -> str:
    found = state(entity, value)
    return f"{schema_name}State.{found.invariant_name if found else value}"


def _invalid(message: str) -> ServiceError:
    return ServiceError(400, INVALID_STATE_CODE, message)


def resolve_change(entity: str, schema_name: str, record_id: str, current: tuple[int, int],
                   new_state: int | None, new_status: int | None) -> tuple[int, int]:
    """The (statecode, statuscode) an Update leaves, or the service's error for the change."""
    if new_state is None and new_status is None:
        return current
    target_state = current[0] if new_state is None else new_state
    found = state(entity, target_state)
    if found is None:
        raise _invalid(f"{target_state} is not a valid state code on {entity} with Id {record_id}.")
    if target_state != current[0] and (entity, target_state) in SPECIAL_MESSAGES:
        raise ServiceError(400, "0x80060888", f"The emulator does not change {entity} to state {found.label} by "
                           f"Update; Dataverse does it with the {SPECIAL_MESSAGES[(entity, target_state)]} message, "
                           "which the emulator does not serve.")
    status = found.default_status if new_status is None else new_status
    if (entity, status) in RESERVED_STATUSES and status != current[1]:
        raise ServiceError(400, "0x80060888", f"Status {status} of {entity} is set by the "
                           f"{RESERVED_STATUSES[(entity, status)]} message, not by Update (emulator).")
    if all(status != n for s in states(entity) for n, _ in s.statuses):
        raise _invalid(f"{status} is not a valid status code on {entity}")
    if all(status != n for n, _ in found.statuses):
        raise _invalid(f"{status} is not a valid status code for state code "
                       f"{enum_name(entity, schema_name, target_state)} on {entity} with Id {record_id}.")
    return target_state, status
