"""The error tree. Every message is written for a CRM administrator; main.py catches ResolverError once."""

from __future__ import annotations

from typing import TypeVar


class ResolverError(Exception):
    """Base of every error the user should see as one line, never as a traceback.

    `answer` names the remembered answer (entity, view, job_id, ...) the error is about, so the menu
    forgets it and asks again next time instead of repeating the same mistake.
    """

    answer: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if "\n" in self.message:  # a message that lists rows: the hint on a line of its own
            return f"{self.message.rstrip()}\n{self.hint}".strip()
        return f"{self.message} {self.hint}".strip()


class ConfigError(ResolverError):
    """A .env file is missing, malformed, or names a bad value."""


class UsageError(ResolverError):
    """The user typed or passed something we cannot use (command line: exit 2)."""


class PlanMismatchError(UsageError):
    """prepare/merges.csv (the plan's view, edited in a spreadsheet) differs from the plan other than by
    deleted rows. `rows`: one line per row that differs; `problems`: how each differs (RowProblem)."""

    rows: list[str]
    problems: list[str]


class EnvironmentMismatchError(UsageError):
    """A run folder prepared against one Dataverse environment, used with another (a wrong .env file)."""


class OutputClosedError(Exception):
    """The user's output went away (`python main.py merge ... | head` after head exits): stop quietly, like a
    Unix tool, after the merges in flight are recorded. Not a ResolverError: there is no one to tell."""


class AuthError(ResolverError):
    """Sign-in failed. Carries MSAL's error fields when there are any."""

    def __init__(self, message: str, hint: str = "", error: str = "", correlation_id: str = "") -> None:
        super().__init__(message, hint)
        self.error = error
        self.correlation_id = correlation_id


class RunStateError(ResolverError):
    """A run-folder file is missing, corrupted, or belongs to another run."""

    def __init__(self, message: str, hint: str = "", path: str = "") -> None:
        super().__init__(message, hint)
        self.path = path


class StepFourStartedError(RunStateError):
    """Step 3 was asked to replace a plan whose merges have begun (see PrepareSettings.replan)."""


class DataverseError(ResolverError):
    """Dataverse answered with an error (or could not be reached)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        request_id: str = "",
        retry_after: float | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after

    @property
    def is_transient(self) -> bool:
        return self.status in (429, 502, 503, 504) or self.status is None

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "code": self.code, "message": self.message}


class NotFoundError(DataverseError):
    """Dataverse has no such record, table or view (HTTP 404)."""


class TokenRefusedError(DataverseError):
    """Dataverse refused the access token (401) and renewing it did not help: nothing more can be sent."""


class OutcomeUnknownError(DataverseError):
    """A non-idempotent request was sent but no answer came back (dropped connection, timeout, 5xx).

    The caller must find out from Dataverse whether it took effect before sending it again. `timed_out`:
    no answer within the read timeout, so the request may still be running on the server.
    """

    timed_out: bool = False


E = TypeVar("E", bound=ResolverError)


def about(answer: str, error: E) -> E:
    """Mark `error` as caused by the remembered answer `answer` (see ResolverError)."""
    error.answer = answer
    return error
