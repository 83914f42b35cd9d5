r"""Keep the access token out of every text this process produces.

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

What counts as the token in a text
----------------------------------
A server may echo the token back in an error body in any encoding, so
:func:`redact` masks, for each secret of at least :data:`MIN_SECRET_LEN`
characters:

* the token in *any mixture* of the encodings it can come back in: the text is
  first decoded to a canonical form (``%XX`` and double ``%25XX``, form ``+``
  for a space, JSON ``\uXXXX``/``\/``/``\"``/``\\``, ``\xXX``, HTML ``&#NN;``,
  ``&#xHH;`` and ``&amp;``-style entities), and every run of at least
  :data:`MIN_SECRET_LEN` consecutive characters of the token found there is
  masked, mapped back to the exact span of the original text;
* every run of at least :data:`MIN_SECRET_LEN` characters of the token's
  *encoded* forms (percent with either hex case, form, JSON, HTML, base64 and
  base64url at each of the three byte alignments), so that even a fragment of
  an encoded token that a server cut short is masked;
* every ``access_token=`` (or ``%3D``, or JSON ``"access_token": "..."``)
  value and every ``Bearer`` credential, whatever its length.

Masking works on runs, not on whole occurrences, so a truncation can never
re-expose part of a token: :func:`clean_snippet` (the only way a body the
server sent becomes part of a message) masks first, cuts second and masks the
cut again; what is left holds fewer than :data:`MIN_SECRET_LEN` consecutive
characters of the token in any of those forms.

Short secrets
-------------
A string shorter than :data:`MIN_SECRET_LEN` characters (the emulator's example
token ``T``) is never *masked*: replacing every ``T`` would mangle ordinary
text (``doctor``'s report, every log line).  It is still never printed: the
client never puts the token into a text itself (messages are built from
token-free parts, URLs are shown without their query, an ``access_token=``
value is masked whatever its length), so the only way it could appear is a
server echoing it back, and the client passes its token to
:func:`clean_snippet`, which then withholds such server text entirely
(:data:`WITHHELD`) instead of quoting it.  Short secrets are not registered
process-wide, so one client's short token never silences another's messages.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "WITHHELD",
    "RedactingFilter",
    "clean_snippet",
    "install_log_redaction",
    "is_maskable",
    "redact",
    "register_secret",
]

MASK = "***"
#: Secrets shorter than this are never masked (see "Short secrets" above); it is also the
#: length of the shortest run of token characters that is masked on its own.
MIN_SECRET_LEN = 8
#: What :func:`clean_snippet` returns for a text that contains a short secret.
WITHHELD = "(the answer's text is not shown: it may quote the access token)"

#: ``access_token=<value>`` in a query string, URL-encoded or not, any case.
_QUERY_TOKEN_RE = re.compile(r"(access_token(?:=|%3D|\\u003d))[^&\s'\"<>)#\\]+", re.IGNORECASE)
#: ``"access_token": "<value>"`` in an echoed JSON document.
_JSON_TOKEN_RE = re.compile(r'("access_token"\s*:\s*")(?:[^"\\]|\\.)*', re.IGNORECASE)
#: ``Authorization: Bearer <value>`` if a header ever ends up in a text.
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
#: One encoded character: what :func:`_canonical` decodes.
_ESCAPE_RE = re.compile(
    r"%25[0-9A-Fa-f]{2}|%[0-9A-Fa-f]{2}"  # percent-encoding, also applied twice
    r"|\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}|\\[\\/\"']"  # JSON and Python string escapes
    r"|&#[xX][0-9A-Fa-f]{1,6};|&#[0-9]{1,7};|&(?:amp|lt|gt|quot|apos);"  # HTML references
)
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}

_secrets: set[str] = set()
_lock = threading.Lock()
_LOGGER_PREFIXES = ("urllib3", "requests")


def is_maskable(secret: str) -> bool:
    """Whether ``secret`` is long enough to be masked in text (see "Short secrets")."""
    return len(secret) >= MIN_SECRET_LEN


def register_secret(secret: str) -> None:
    """Remember ``secret`` so :func:`redact`, :func:`clean_snippet` and the log filter mask it.

    A secret shorter than :data:`MIN_SECRET_LEN` is not remembered: masking it would
    mangle ordinary text, and withholding every text containing it would silence other
    clients' messages in the same process.  Whoever holds it passes it to
    :func:`clean_snippet` (as the client does with its token), which withholds a server's
    text that contains it.
    """
    if secret and is_maskable(secret):
        with _lock:
            _secrets.add(secret)


def _all_secrets(secrets: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """``(maskable, short)``: the registered secrets plus ``secrets``; short ones only from ``secrets``."""
    with _lock:
        long_ = set(_secrets)
    short: set[str] = set()
    for secret in secrets:
        if secret:
            (long_ if is_maskable(secret) else short).add(secret)
    return frozenset(long_), frozenset(short)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with registered secrets, ``secrets``, token query values and Bearer values masked.

    Every encoding and every run of :data:`MIN_SECRET_LEN` or more characters of a
    secret is masked (see the module docstring); secrets shorter than that are not.
    """
    if not text:
        return text
    maskable, _ = _all_secrets(secrets)
    if maskable:
        text = _mask_runs(text, maskable)
    text = _QUERY_TOKEN_RE.sub(lambda m: m.group(1) + MASK, text)
    text = _JSON_TOKEN_RE.sub(lambda m: m.group(1) + MASK, text)
    return _BEARER_RE.sub(lambda m: m.group(1) + MASK, text)


def clean_snippet(text: str, secrets: Iterable[str] = (), limit: int = 200) -> str:
    """Text a server sent, fit for a message: whitespace flattened, masked, then cut to ``limit``.

    Masking happens before the cut, and the cut text is masked once more, so no
    cut can leave a fragment of a token behind.  If a secret too short to mask
    occurs in what would be shown, the whole text is withheld (:data:`WITHHELD`).
    """
    flat = " ".join(str(text).split())
    maskable, short = _all_secrets(secrets)
    margin = max((_longest_form(s) for s in maskable), default=0) + 16
    size = limit + 2 * margin
    while True:
        # Mask a head long enough that, after masking shrank it, the part we show still
        # ends well before the head's end (where a token cut by the head could be).
        head = flat[:size]
        masked = redact(head, maskable)
        if size >= len(flat) or len(masked) >= limit + margin:
            break
        size *= 2
    if len(masked) > limit or size < len(flat):
        end = limit
        while 0 < end < len(masked) and masked[end] == "*" and masked[end - 1] == "*":
            end += 1  # never cut a mask in two: "s**..." would look like a partial token
        masked = redact(masked[:end], maskable) + "..."
    if short and _contains_any(masked, short):
        return WITHHELD
    return masked


# --------------------------------------------------------------------------- the machinery


def _canonical(text: str) -> tuple[str, list[int] | None]:
    """``text`` with every encoded character decoded, and where each decoded character began.

    Returns ``(canonical, starts)``: canonical character ``i`` came from
    ``text[starts[i]:starts[i + 1]]`` (``starts`` has one extra end entry), or
    ``starts is None`` when nothing was encoded (the positions are the same).
    A space and a ``+`` are the same character here (form encoding).
    """
    if "%" not in text and "\\" not in text and "&" not in text:
        return text.replace(" ", "+"), None
    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    for match in _ESCAPE_RE.finditer(text):
        begin, end = match.span()
        if begin > pos:
            parts.append(text[pos:begin])
            starts.extend(range(pos, begin))
        parts.append(_decode_one(match.group()))
        starts.append(begin)
        pos = end
    if pos < len(text):
        parts.append(text[pos:])
        starts.extend(range(pos, len(text)))
    starts.append(len(text))
    return "".join(parts).replace(" ", "+"), starts


def _decode_one(escape: str) -> str:
    if escape[0] == "%":
        return chr(int(escape[-2:], 16))
    if escape[0] == "\\":
        return chr(int(escape[2:], 16)) if escape[1] in "ux" else escape[1]
    if escape in _ENTITIES:
        return _ENTITIES[escape]
    number = escape[3:-1] if escape[2] in "xX" else escape[2:-1]
    try:
        return chr(int(number, 16 if escape[2] in "xX" else 10))
    except (ValueError, OverflowError):
        return "\ufffd"


def _encoded_forms(secret: str) -> set[str]:
    """The ways ``secret`` can come back from a server, each as a literal string."""
    raw = secret.encode("utf-8")
    special = [c for c in secret if not c.isalnum()]
    forms = {
        quote(secret, safe=""), quote(secret, safe="/"), quote_plus(secret, safe=""),
        quote(quote(secret, safe=""), safe=""),
        json.dumps(secret)[1:-1], json.dumps(secret)[1:-1].replace("/", "\\/"),
        json.dumps(secret, ensure_ascii=True)[1:-1],
        "".join(f"\\u{ord(c):04x}" if c in special else c for c in secret),
        html.escape(secret), html.escape(secret, quote=False),
        "".join(f"&#{ord(c)};" if c in special else c for c in secret),
        "".join(f"&#x{ord(c):x};" if c in special else c for c in secret),
    }
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in forms}
    forms |= {re.sub(r"\\u[0-9a-f]{4}", lambda m: m.group().upper().replace("\\U", "\\u"), f)
              for f in forms}
    # base64: the token may sit at any byte offset of the encoded data, which changes the
    # encoding; the characters that depend on the token's bytes alone are the same for
    # each of the three alignments.
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * pad + raw).decode("ascii")
            first = -(-8 * pad // 6)
            last = 8 * (pad + len(raw)) // 6
            forms.add(encoded[first:last])
    return {f for f in forms if f}


@functools.lru_cache(maxsize=64)
def _runs(secrets: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    """``(canonical_grams, encoded_grams)``: every run of MIN_SECRET_LEN characters to mask."""
    canonical: set[str] = set()
    encoded: set[str] = set()
    n = MIN_SECRET_LEN
    for secret in secrets:
        form = _canonical(secret)[0]
        canonical.update(form[i:i + n] for i in range(len(form) - n + 1))
        for enc in _encoded_forms(secret):
            encoded.update(enc[i:i + n] for i in range(len(enc) - n + 1))
    return frozenset(canonical), frozenset(encoded)


@functools.lru_cache(maxsize=64)
def _longest_form(secret: str) -> int:
    return max(len(f) for f in (_encoded_forms(secret) | {secret}))


def _spans(text: str, grams: frozenset[str], size: int) -> list[tuple[int, int]]:
    """Every ``[start, end)`` where ``text`` holds one of ``grams`` (all of length ``size``)."""
    found: list[tuple[int, int]] = []
    for i in range(len(text) - size + 1):
        if text[i:i + size] in grams:
            found.append((i, i + size))
    return found


def _mask_runs(text: str, secrets: frozenset[str]) -> str:
    """Replace every run of a secret's characters (any form, see the module docstring) with MASK."""
    canonical_grams, encoded_grams = _runs(secrets)
    n = MIN_SECRET_LEN
    spans = _spans(text, encoded_grams, n)
    canon, starts = _canonical(text)
    for begin, end in _spans(canon, canonical_grams, n) + _spans(canon, encoded_grams, n):
        spans.append((begin, end) if starts is None else (starts[begin], starts[end]))
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    pos = 0
    current_start, current_end = spans[0]
    for begin, end in spans[1:]:
        if begin <= current_end:
            current_end = max(current_end, end)
            continue
        out.append(text[pos:current_start] + MASK)
        pos = current_end
        current_start, current_end = begin, end
    out.append(text[pos:current_start] + MASK)
    out.append(text[current_end:])
    return "".join(out)


def _contains_any(text: str, secrets: frozenset[str]) -> bool:
    """Whether a (short) secret occurs in ``text``, raw or encoded."""
    canon = _canonical(text)[0]
    return any(s in text or _canonical(s)[0] in canon for s in secrets)


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
