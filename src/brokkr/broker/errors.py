"""API errors: every 4xx/5xx answer has the body {"code", "message", "details"?}."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer; raise it from a handler and the app renders it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


def bad_request(code: str, message: str, details: dict[str, Any] | None = None) -> ApiError:
    """400: the request is malformed or invalid."""
    return ApiError(400, code, message, details)


def unauthorized(message: str = "a valid PAK is required in the Authorization header") -> ApiError:
    """401: no PAK or an unknown PAK."""
    return ApiError(401, "unauthorized", message)


def forbidden(message: str, code: str = "forbidden") -> ApiError:
    """403: the PAK is valid but its role may not do this."""
    return ApiError(403, code, message)


def not_found(kind: str, ident: object | None = None) -> ApiError:
    """404 with code `<kind>_not_found`."""
    what = kind.replace("_", " ")
    suffix = f" {ident}" if ident is not None else ""
    return ApiError(404, f"{kind}_not_found", f"{what}{suffix} not found")


def conflict(code: str, message: str) -> ApiError:
    """409: the request clashes with existing data (duplicate name, already registered)."""
    return ApiError(409, code, message)


def unavailable(message: str = "the database is unreachable; retry later") -> ApiError:
    """503: a dependency is down or the broker is shutting down."""
    return ApiError(503, "service_unavailable", message)
