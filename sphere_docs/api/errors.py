"""The API client's errors: every failed call is a :class:`SphereEngineError` (tree in ``api.client``).

Layer: api.  Imports only the core.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import SphereDocsError

__all__ = [
    "ApiTimeout",
    "AuthError",
    "InvalidRequestError",
    "MalformedResponseError",
    "NotFoundError",
    "RateLimitedError",
    "ServerError",
    "SphereEngineError",
    "TransportError",
]


class SphereEngineError(SphereDocsError):
    """A Containers API call failed.  See the module docstring for the tree."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        maybe_processed: bool = False,
    ):
        self.message = message
        self.status = status
        self.error_code = error_code
        self.method = method
        self.path = path
        self.maybe_processed = maybe_processed
        super().__init__(self._text())

    def _text(self) -> str:
        where = " ".join(p for p in (self.method, self.path) if p)
        what = []
        if self.status is not None:
            what.append(f"HTTP {self.status}")
        if self.error_code is not None:
            what.append(f"error_code {self.error_code}")
        head = f"Sphere Engine API {where}" if where else "Sphere Engine API"
        if what:
            head += " (" + ", ".join(what) + ")"
        return f"{head}: {self.message}"

    @property
    def reason(self) -> str:
        """A short human reason for placeholders and warnings (never contains the token)."""
        bits = [f"HTTP {self.status}"] if self.status is not None else []
        return (", ".join(bits) + ": " if bits else "") + self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes (Sphinx parallel builds)
        return (
            _rebuild_error,
            (type(self), self.message, self.status, self.error_code, self.method, self.path,
             self.maybe_processed),
        )


def _rebuild_error(cls: type[SphereEngineError], message: str, status: int | None,
                   error_code: int | None, method: str | None, path: str | None,
                   maybe_processed: bool) -> SphereEngineError:
    return cls(message, status=status, error_code=error_code, method=method, path=path,
               maybe_processed=maybe_processed)


class AuthError(SphereEngineError):
    """401/403: the access token is missing, wrong, or not allowed to do this."""


class NotFoundError(SphereEngineError):
    """404: the workspace, project or path does not exist."""


class InvalidRequestError(SphereEngineError):
    """400/422 (and other 4xx): the API rejected the request data."""


class RateLimitedError(SphereEngineError):
    """429 after all retries; ``retry_after`` is the server's last hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(SphereEngineError):
    """5xx after all retries (or at once for a POST that may have been processed)."""


class TransportError(SphereEngineError):
    """No usable HTTP answer: connection refused or reset, response cut off."""


class ApiTimeout(TransportError, TimeoutError):
    """The API did not answer within the timeout."""


class MalformedResponseError(TransportError):
    """The API answered, but not with the JSON we expect."""
