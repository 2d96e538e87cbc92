"""Opaque AIP-158 page tokens: the last id served, bound to the filters it was issued for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

from ..domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A token is exactly: the last id served (8 bytes) and a fingerprint of the filters (8 bytes).
_TOKEN = struct.Struct(">Q8s")
_TOKEN_TEXT_LENGTH = 22  # unpadded url-safe base64 of 16 bytes


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument.field(
            "page_size", f"{requested} is negative", reason="INVALID_PAGE_SIZE", page_size=requested
        )
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _fingerprint(filters: tuple[object, ...]) -> bytes:
    return hashlib.sha256(repr(filters).encode()).digest()[:8]


def encode(after_id: int, filters: tuple[object, ...]) -> str:
    token = _TOKEN.pack(after_id, _fingerprint(filters))
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode(token: str, filters: tuple[object, ...]) -> int:
    """The id to continue after (0 for the first page)."""
    if token == "":
        return 0
    try:
        if len(token) != _TOKEN_TEXT_LENGTH:
            raise ValueError(len(token))
        after, issued_for = _TOKEN.unpack(base64.urlsafe_b64decode(token + "=="))
    except (ValueError, binascii.Error, struct.error) as exc:
        raise InvalidArgument.field(
            "page_token", "is not a token this service issued", reason="INVALID_PAGE_TOKEN"
        ) from exc
    if issued_for != _fingerprint(filters):
        raise InvalidArgument.field(
            "page_token",
            "was issued for other filters; send the same filters as the first page",
            reason="PAGE_TOKEN_FILTER_MISMATCH",
        )
    return after
