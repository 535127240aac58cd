"""Domain errors. Services raise these; the HTTP and CLI edges turn them into friendly messages."""

from __future__ import annotations


class YishiError(Exception):
    """Base class: `message` is for users (in Chinese), `hint` says what to do next."""

    status_code = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class NotFound(YishiError):
    status_code = 404


class Forbidden(YishiError):
    status_code = 403


class Unauthorized(YishiError):
    status_code = 401


class Invalid(YishiError):
    status_code = 422


class Conflict(YishiError):
    status_code = 409


class UpstreamUnavailable(YishiError):
    """An outside service (LLM endpoint, WeChat API, Chroma server) failed or timed out."""

    status_code = 503

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = True) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable
