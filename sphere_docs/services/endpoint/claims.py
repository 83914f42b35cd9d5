"""Reuse claims: proof that a reader was given a workspace by this endpoint.

A claim is ``v1.<workspace id>.<expiry>.<mac>``; the MAC is HMAC-SHA256 over
the version, workspace id, project, page, embed name and expiry, with the
endpoint's signing key, made and checked by itsdangerous (no key derivation,
so the claims issued before it was used still verify).  Several keys rotate:
the first signs, every one verifies, so a deployment adds a new key in front,
and drops the old one once the claims it signed have expired (``CLAIM_TTL``).  The page, name and project are not inside the claim:
they come from the request, so a claim only verifies for the embed it was
issued for, and a reader who sends someone else's workspace id has no MAC for
it.  Nothing secret is in a claim (a workspace id is not a credential by
itself); the key never leaves the process.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence

from itsdangerous import Signer as _ItsSigner

__all__ = ["ClaimError", "Signer"]

_CLAIM_RE = re.compile(r"^v1\.([0-9a-f]{32})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$")


class ClaimError(ValueError):
    """A claim that does not verify; ``code`` is ``claim_invalid`` or ``claim_expired``."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


class Signer:
    """Issues and verifies claims; ``key`` is one key or a sequence of keys (the first signs)."""

    def __init__(self, key: bytes | Sequence[bytes], ttl: int):
        keys = [key] if isinstance(key, bytes) else list(key)
        if not keys or any(len(k) < 16 for k in keys):
            raise ValueError("every signing key must be at least 16 bytes")
        # itsdangerous signs with the last key of its list and verifies with each
        self._signer = _ItsSigner(list(reversed(keys)), key_derivation="none", digest_method=hashlib.sha256)
        self.keys = len(keys)
        self.ttl = ttl

    def __repr__(self) -> str:  # never show the key
        return f"Signer(ttl={self.ttl})"

    @staticmethod
    def _message(workspace_id: str, project: str, page: str, name: str, expiry: int) -> bytes:
        return "\n".join(("v1", workspace_id, project, page, name, str(expiry))).encode()

    def _mac(self, workspace_id: str, project: str, page: str, name: str, expiry: int) -> str:
        return self._signer.get_signature(self._message(workspace_id, project, page, name, expiry)).decode()

    def issue(self, workspace_id: str, project: str, page: str, name: str, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + self.ttl)
        return f"v1.{workspace_id}.{expiry}.{self._mac(workspace_id, project, page, name, expiry)}"

    def verify(self, claim: str, project: str, page: str, name: str, now: float | None = None) -> str:
        """The workspace id the claim proves, or :class:`ClaimError`.

        The MAC is checked before the expiry so a forged claim is never
        reported as merely expired.
        """
        match = _CLAIM_RE.match(claim)
        if not match:
            raise ClaimError("claim_invalid", "The saved workspace claim is not valid for this embed.")
        workspace_id, expiry_text, mac = match.groups()
        expiry = int(expiry_text)
        if not self._signer.verify_signature(self._message(workspace_id, project, page, name, expiry), mac):
            raise ClaimError("claim_invalid", "The saved workspace claim is not valid for this embed.")
        if expiry <= (time.time() if now is None else now):
            raise ClaimError("claim_expired", "The saved workspace claim has expired.")
        return workspace_id
