"""Reuse claims: proof that a reader was given a workspace by this endpoint.

A claim is ``v1.<workspace id>.<expiry>.<mac>``; the MAC is HMAC-SHA256 over
the version, workspace id, project, page, embed name and expiry, with the
endpoint's signing key.  The page, name and project are not inside the claim:
they come from the request, so a claim only verifies for the embed it was
issued for, and a reader who sends someone else's workspace id has no MAC for
it.  Nothing secret is in a claim (a workspace id is not a credential by
itself); the key never leaves the process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

__all__ = ["ClaimError", "Signer"]

_CLAIM_RE = re.compile(r"^v1\.([0-9a-f]{32})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$")


class ClaimError(ValueError):
    """A claim that does not verify; ``code`` is ``claim_invalid`` or ``claim_expired``."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


class Signer:
    def __init__(self, key: bytes, ttl: int):
        if len(key) < 16:
            raise ValueError("the signing key must be at least 16 bytes")
        self._key = key
        self.ttl = ttl

    def __repr__(self) -> str:  # never show the key
        return f"Signer(ttl={self.ttl})"

    def _mac(self, workspace_id: str, project: str, page: str, name: str, expiry: int) -> str:
        message = "\n".join(("v1", workspace_id, project, page, name, str(expiry))).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

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
        if not hmac.compare_digest(mac, self._mac(workspace_id, project, page, name, expiry)):
            raise ClaimError("claim_invalid", "The saved workspace claim is not valid for this embed.")
        if expiry <= (time.time() if now is None else now):
            raise ClaimError("claim_expired", "The saved workspace claim has expired.")
        return workspace_id
