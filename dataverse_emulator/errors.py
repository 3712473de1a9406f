"""Errors the emulator answers with, shaped like Dataverse's `{"error": {"code", "message"}}`."""

from __future__ import annotations


class ServiceError(Exception):
    """A Dataverse error response: HTTP status, hex error code, message (and optional headers)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(entity: str, record_id: str) -> ServiceError:
    return ServiceError(404, "0x80040217", f"{entity} With Id = {record_id} Does Not Exist")


def bad_request(message: str, code: str = "0x80060888") -> ServiceError:
    """An OData query or payload the service cannot use (0x80060888: generic OData error)."""
    return ServiceError(400, code, message)
