"""A note on every merged target (opt-in, `merge --note`): a CRM user looking at the surviving record sees
that a merge happened, with whom, when, and what was written.

Created by the worker right after the merge, journaled (``note`` intent, then done with the annotation's id),
and never duplicated: before creating one the worker looks for it (its subject names the subordinate), so a
rerun after a crash, or a lost answer, finds the first instead of adding a second. Undo deletes it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from dataverse import DataverseClient
from dataverse.odata import logical_name, odata_string
from errors import OutcomeUnknownError
from runfolder.journal import Journal
from runfolder.state import PlannedMerge

log = logging.getLogger(__name__)

APP = "Dynamics Duplicate Resolver"


def subject(row: PlannedMerge) -> str:
    name = f"{row.subordinate_name} " if row.subordinate_name else ""
    return f"Merged with {name}({row.subordinate_id})"[:500]


def text(row: PlannedMerge, run_folder: str, when: datetime | None = None) -> str:
    day = (when or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    fields = ", ".join(logical_name(f) for f in row.changed_fields) or "none"
    name = f"{row.subordinate_name} " if row.subordinate_name else ""
    return (f"Merged with {name}({row.subordinate_id}) on {day} by {APP}. Fields written: {fields}. "
            f"Run folder: {run_folder}.")


class Notes:
    """Creates the note of each merged target, once."""

    def __init__(self, client: DataverseClient, journal: Journal, entity: str, entity_set: str, run_folder: str,
                 environment: str) -> None:
        self._client, self._journal, self._entity, self._set = client, journal, entity, entity_set
        self._folder, self._environment = run_folder, environment

    def ensure(self, row: PlannedMerge) -> str:
        """The note's annotation id (found, or created now)."""
        ids = {"subordinate_id": row.subordinate_id, "target_id": row.target_id, "group_id": row.group_id,
               "environment": self._environment}
        for attempt in range(1, 4):
            found = self._find(row)
            if found:
                self._journal.append("note", phase="done", annotation_id=found, **ids)
                return found
            self._journal.append("note", phase="intent", attempt=attempt, **ids)
            try:
                created = self._client.create("annotations", {
                    "subject": subject(row), "notetext": text(row, self._folder),
                    f"objectid_{self._entity}@odata.bind": f"/{self._set}({row.target_id})"})
            except OutcomeUnknownError as exc:
                log.warning("note on %s: %s; looking for it", row.target_id, exc.message)
                continue
            self._journal.append("note", phase="done", annotation_id=created, **ids)
            return created
        raise OutcomeUnknownError(f"The note on {row.target_id} got no answer three times.")

    def _find(self, row: PlannedMerge) -> str:
        rows = self._client.get_all("annotations", {
            "$select": "annotationid",
            "$filter": f"_objectid_value eq {row.target_id} and subject eq {odata_string(subject(row))}"})
        return next((str(r["annotationid"]).lower() for r in rows), "")
