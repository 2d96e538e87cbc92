"""Bearer tokens for the daemon's tokens file: how one is made and the digest the file keeps."""

from __future__ import annotations

import hashlib
import secrets

# The roles a tokens-file entry may name, weakest first (the daemon's Role enum, by label).
ROLE_NAMES = ("reader", "writer", "admin")


def digest_of(token: str) -> bytes:
    """The SHA-256 of a token: the tokens file keeps its hex form, never the token."""
    return hashlib.sha256(token.encode()).digest()


def new_token() -> tuple[str, str]:
    """A fresh random token (shown once) and the hex digest the tokens file keeps."""
    token = "mct_" + secrets.token_urlsafe(32)
    return token, digest_of(token).hex()
