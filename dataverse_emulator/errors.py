"""Errors the emulator answers with, shaped like Dataverse's `{"error": {"code", "message"}}`."""

from __future__ import annotations

PLUGIN_CODE = "0x80040265"
# Error codes and their names (data-service-error-codes.md); `ApiExceptionMesageName` is spelt as the service does.
ERROR_NAMES = {
    "0x80040217": "ObjectDoesNotExist", "0x80040203": "InvalidArgument", "0x80040237": "DuplicateRecord",
    "0x80040333": "DuplicateRecordsFound", "0x80045300": "MergeCyclicalParentingError",
    "0x80045301": "MergeSecurityError", "0x80045302": "MergeActiveQuoteError",
    "0x80045304": "MergeEntityNotActiveError", "0x80045305": "MergeEntitiesIdenticalError",
    "0x80045316": "MergeDifferentlyParentedWarning", "0x80045317": "MergeLossOfParentingWarning",
    "0x80048408": "InvalidStateCodeStatusCode", "0x80060891": "RecordNotFoundByEntityKey",
    "0x80060892": "DuplicateRecordEntityKey", "0x80060882": "ConcurrencyVersionMismatch", PLUGIN_CODE: "IsvAborted",
}


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

    def details(self) -> dict[str, str]:
        """The `@Microsoft.PowerApps.CDS.*` annotations of this error (sent only when the request asks for
        annotations). Keys as captured in Microsoft's docs and test fixtures; which ones a given error carries
        on the service is unverified."""
        prefix = "Microsoft.PowerApps.CDS."
        hex_code = self.code[2:].lower() if self.code.startswith("0x") else self.code
        out = {
            prefix + "ErrorDetails.ApiExceptionCategory": "ClientError" if self.status < 500 else "SystemFailure",
            prefix + "ErrorDetails.ApiExceptionHttpStatusCode": str(self.status),
            prefix + "HelpLink": "http://go.microsoft.com/fwlink/?LinkID=398563&error=Microsoft.Crm.CrmException"
                                 f"%3a{hex_code}&client=platform",
            prefix + "InnerError.Message": self.message,
        }
        if self.code in ERROR_NAMES:
            out[prefix + "ErrorDetails.ApiExceptionMesageName"] = ERROR_NAMES[self.code]
        if self.code == PLUGIN_CODE:
            out[prefix + "ErrorDetails.OperationStatus"] = "0"
            out[prefix + "ErrorDetails.SubErrorCode"] = "-2146233088"
        return {"@" + k: v for k, v in out.items()}


def not_found(entity: str, record_id: str) -> ServiceError:
    return ServiceError(404, "0x80040217", f"{entity} With Id = {record_id} Does Not Exist")


def bad_request(message: str, code: str = "0x80060888") -> ServiceError:
    """An OData query or payload the service cannot use (0x80060888: generic OData error)."""
    return ServiceError(400, code, message)
