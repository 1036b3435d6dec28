"""Kubernetes ``Status`` errors: the one shape every API failure takes on the wire.

Clients (the official ``kubernetes`` client, kubectl, controller-runtime) branch on ``code`` and
``reason`` (``AlreadyExists`` vs ``Conflict`` are both 409), so every failure the emulator returns is
built here, with the messages the real API server uses.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failure that becomes a ``kind: Status`` body with an HTTP code."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        """The ``metav1.Status`` document for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(group: str, plural: str, name: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": plural}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def _resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_resource(group, plural)} "{name}" not found',
        details=_details(group, plural, name),
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_resource(group, plural)} "{name}" already exists',
        details=_details(group, plural, name),
    )


def conflict(group: str, plural: str, name: str, why: str | None = None) -> ApiError:
    why = (
        why
        or "the object has been modified; please apply your changes to the latest version and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_resource(group, plural)} "{name}": {why}',
        details=_details(group, plural, name),
    )


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 with one cause per ``(field, message)``, worded like the API server's field errors."""
    joined = ", ".join(f"{field}: {msg}" for field, msg in causes)
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [
            {
                "reason": "FieldValueRequired"
                if msg.startswith("Required value")
                else "FieldValueInvalid",
                "message": msg,
                "field": field,
            }
            for field, msg in causes
        ],
    }
    if group:
        details["group"] = group
    if len(causes) > 1:
        joined = "[" + joined + "]"
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', details=details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(requested: int, oldest: int) -> ApiError:
    # etcd compaction wording: "too old resource version: <requested> (<oldest available>)".
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def method_not_allowed(verb: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({verb})",
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def no_such_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")
