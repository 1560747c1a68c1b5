"""Errors the HTTP API reports to clients, each with its status and code."""


class ApiError(Exception):
    """An error returned to the client as ``{"error": message, "code": code}`` with an HTTP status."""

    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidBody(ApiError):
    status = 400
    code = "INVALID_BODY"


class InvalidType(ApiError):
    status = 400
    code = "INVALID_TYPE"


class InvalidTarget(ApiError):
    status = 400
    code = "INVALID_TARGET"


class InvalidQuery(ApiError):
    status = 400
    code = "INVALID_QUERY"


class Unauthorized(ApiError):
    status = 401
    code = "UNAUTHORIZED"

    def __init__(self, message: str):
        super().__init__(message, {"WWW-Authenticate": 'Bearer realm="queue-job-visualizer"'})


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class MethodNotAllowed(ApiError):
    status = 405
    code = "METHOD_NOT_ALLOWED"

    def __init__(self, method: str, allowed: list[str]):
        allow = ", ".join(allowed)
        super().__init__(f"method {method} is not allowed here; use {allow}", {"Allow": allow})


class Conflict(ApiError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class RateLimited(ApiError):
    status = 429
    code = "RATE_LIMITED"


class EnqueueFailed(ApiError):
    status = 503
    code = "ENQUEUE_FAILED"


class InvalidConfig(ApiError):
    status = 500
    code = "INVALID_CONFIG"


class StorageUnavailable(ApiError):
    status = 503
    code = "STORAGE_UNAVAILABLE"
