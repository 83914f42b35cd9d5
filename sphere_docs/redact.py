"""Keep the access token out of every text this process produces.

The token travels as the ``access_token`` query parameter (as the vendor's
reference documents), so it is part of every request URL.  HTTP libraries put
that URL into places we do not control:

* ``urllib3`` logs each request and each retry at DEBUG level with the full URL;
* ``requests``/``urllib3`` exception messages quote the URL.

The client never lets a library exception escape (it raises its own, built
from token-free parts, outside the ``except`` block so no chained exception
carries the original text).  For log records, :func:`install_log_redaction`
puts a :class:`RedactingFilter` on the HTTP libraries' loggers: it rewrites
each record's message before any handler sees it, replacing every registered
secret and every ``access_token=...`` query value with ``***``.

Logger filters are not inherited by child loggers, so the filter is attached
to each ``urllib3.*`` / ``requests.*`` logger by name (and again whenever a
client is created, to cover modules imported later).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

__all__ = [
    "MASK",
    "RedactingFilter",
    "install_log_redaction",
    "redact",
    "register_secret",
]

MASK = "***"

#: ``access_token=<value>`` in a query string, URL-encoded or not, any case.
_QUERY_TOKEN_RE = re.compile(r"(access_token(?:=|%3D))[^&\s'\"<>)#]+", re.IGNORECASE)
#: ``Authorization: Bearer <value>`` if a header ever ends up in a text.
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)

_secrets: set[str] = set()
_lock = threading.Lock()
_LOGGER_PREFIXES = ("urllib3", "requests")


def register_secret(secret: str) -> None:
    """Remember ``secret`` so :func:`redact` and the log filter mask it everywhere.

    Very short strings are ignored: masking them would mangle ordinary text.
    """
    if secret and len(secret) >= 6:
        with _lock:
            _secrets.add(secret)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with registered secrets, ``secrets`` and token query values masked."""
    if not text:
        return text
    with _lock:
        known = set(_secrets)
    for secret in (*known, *secrets):
        if secret and secret in text:
            text = text.replace(secret, MASK)
    text = _QUERY_TOKEN_RE.sub(lambda m: m.group(1) + MASK, text)
    return _BEARER_RE.sub(lambda m: m.group(1) + MASK, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's final message with :func:`redact`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for the handler to report
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and not record.exc_text:
            # Format the traceback now, so the handler uses the cleaned text.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_log_redaction(extra_loggers: Iterable[str] = ()) -> None:
    """Attach the redacting filter to every ``urllib3``/``requests`` logger (idempotent)."""
    names = {
        name
        for name in list(logging.root.manager.loggerDict)
        if name.startswith(_LOGGER_PREFIXES)
    }
    names.update(("urllib3", "urllib3.connectionpool", "urllib3.util.retry", "requests"))
    names.update(extra_loggers)
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
