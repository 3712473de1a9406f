"""The marketing-list workaround (opt-in): move a subordinate's static-list memberships to the target, and put
them back when the merge then fails.

With Dynamics Marketing installed, Merge fails when the subordinate is a member of a marketing list
(merge-rules.md, "Marketing plugin"). The documented workaround: add the target to each of those lists,
remove the subordinate, then merge. Each step is journaled (``list_add`` / ``list_remove``, phase ``intent``
then ``done``) and checked before it is done, so a rerun finishes a half-done workaround: adding a member
that is already there, or removing one that is gone, is skipped. Targets are added to every list before
the subordinate leaves any, so no list ever loses the person.

When the merge then fails (a privilege, a parent check...), the subordinate stays an active record of its
own and must be back in its lists: `restore` undoes exactly the steps the journal shows done (the target
leaves the lists it was added to, the subordinate rejoins the lists it left), journaled as ``list_restore``,
and resumable the same way.

Web API: ``POST lists({id})/Microsoft.Dynamics.CRM.AddMemberList`` and ``.../RemoveMemberList``, both with
``{"EntityId": id}`` (bound to the list, as Microsoft documents them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from dataverse import DataverseClient
from errors import DataverseError, OutcomeUnknownError
from merging.failure_classes import MARKETING_PLUGIN, classify
from runfolder.journal import Journal, SubordinateHistory
from runfolder.state import PlannedMerge

log = logging.getLogger(__name__)

_MAX_TRIES = 4


def is_plugin_failure(exc: DataverseError) -> bool:
    """True when a Merge was refused by the marketing plugin (the subordinate is in a marketing list)."""
    return classify(exc.status, exc.code, exc.message)[0] is MARKETING_PLUGIN


class ListWorkaround:
    """Moves static marketing-list memberships from subordinates to targets (and back), journaling every step."""

    def __init__(self, client: DataverseClient, journal: Journal, history: dict[str, SubordinateHistory],
                 environment: str = "") -> None:
        self._client = client
        self._journal = journal
        self._history = history
        self._environment = environment

    def apply(self, row: PlannedMerge) -> list[dict[str, Any]]:
        """Make the target a member of the subordinate's static lists and remove the subordinate from them.

        Returns the steps done now and earlier (what `restore` undoes if the merge fails); raises
        DataverseError when Dataverse refuses a step.
        """
        sub, target = row.subordinate_id, row.target_id
        member_of = self._static_lists(self._member_lists(sub))
        touched = self._history[sub].list_ids if sub in self._history else []
        lists = list(dict.fromkeys([*member_of, *touched]))
        earlier = self._history[sub].unrestored_list_moves if sub in self._history else []
        done = [s for list_id in lists if (s := self._ensure(row, "list_add", list_id, target, present=True))]
        done += [s for list_id in lists if list_id in member_of
                 and (s := self._ensure(row, "list_remove", list_id, sub, present=False))]
        if lists:
            log.info("marketing lists of %s moved to %s: %d", sub, target, len(lists))
        return [*earlier, *done]

    def restore(self, row: PlannedMerge, steps: Iterable[dict[str, Any]]) -> int:
        """Undo the workaround steps done for a merge that failed (`SubordinateHistory.lists_to_restore`): the
        subordinate back into the lists it left first, then the target out of the lists it was added to.
        Returns how many steps were undone."""
        done = list(steps)
        back = [s for s in done if s.get("event") == "list_remove"]
        out = [s for s in done if s.get("event") == "list_add"]
        for s in back:
            self._ensure(row, "list_restore", str(s["list_id"]), row.subordinate_id, present=True, action="add")
        for s in out:
            self._ensure(row, "list_restore", str(s["list_id"]), row.target_id, present=False, action="remove")
        if done:
            log.info("marketing lists of %s put back after its merge failed: %d steps", row.subordinate_id, len(done))
        return len(done)

    def _member_lists(self, entity_id: str) -> list[str]:
        rows = self._client.get_all("listmembers", {"$select": "listmemberid,_listid_value",
                                                     "$filter": f"_entityid_value eq {entity_id}"})
        return list(dict.fromkeys(str(r["_listid_value"]).lower() for r in rows if r.get("_listid_value")))

    def _static_lists(self, list_ids: Iterable[str]) -> list[str]:
        ids = list(list_ids)
        if not ids:
            return []
        rows = self._client.get_many("lists", "listid", ids, ["listid", "type"])
        return [str(r["listid"]).lower() for r in rows if not r.get("type")]

    def _is_member(self, list_id: str, entity_id: str) -> bool:
        rows = self._client.get_all("listmembers", {
            "$select": "listmemberid",
            "$filter": f"_listid_value eq {list_id} and _entityid_value eq {entity_id}",
        })
        return any(True for _ in rows)

    def _ensure(self, row: PlannedMerge, event: str, list_id: str, entity_id: str, *, present: bool,
                action: str = "") -> dict[str, Any] | None:
        """Add (present=True) or remove one member, only if needed; an unknown outcome is checked, not guessed.
        The journal record of the step done ('done' phase), or None when nothing had to be done."""
        name = "AddMemberList" if present else "RemoveMemberList"
        ids = {"subordinate_id": row.subordinate_id, "target_id": row.target_id, "group_id": row.group_id,
               "list_id": list_id, "entity_id": entity_id, "environment": self._environment}
        if action:
            ids["action"] = action
        for attempt in range(1, _MAX_TRIES + 1):
            if self._is_member(list_id, entity_id) == present:
                if attempt > 1 or action:  # a restore step already in place still counts as restored
                    return self._journal.append(event, phase="done", **ids)
                return None
            self._journal.append(event, phase="intent", attempt=attempt, **ids)
            try:
                self._client.post(f"lists({list_id})/Microsoft.Dynamics.CRM.{name}", {"EntityId": entity_id})
            except OutcomeUnknownError as exc:
                log.warning("%s %s for %s: %s; checking the list", name, list_id, entity_id, exc.message)
                time.sleep(0.2 * attempt)
                continue
            return self._journal.append(event, phase="done", **ids)
        raise OutcomeUnknownError(f"{name} on list {list_id} for {entity_id} got no answer {_MAX_TRIES} times.")
