"""Opaque AIP-158 page tokens: where the last page ended, bound to the filters it was issued for.

A token is unpadded url-safe base64 of a fingerprint of the filters (8 bytes) followed by the
position: an id (8 bytes, big-endian) or a text key such as an account id (its UTF-8 bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from ..domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_FINGERPRINT = 8
_ID_TOKEN_LENGTH = 22  # unpadded base64 of 16 bytes
_MAX_TEXT_KEY = 128


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument.field(
            "page_size", f"{requested} is negative", reason="INVALID_PAGE_SIZE", page_size=requested
        )
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _fingerprint(filters: tuple[object, ...]) -> bytes:
    return hashlib.sha256(repr(filters).encode()).digest()[:_FINGERPRINT]


def encode(position: int | str, filters: tuple[object, ...]) -> str:
    key = position.to_bytes(8, "big") if isinstance(position, int) else position.encode()
    return base64.urlsafe_b64encode(_fingerprint(filters) + key).decode().rstrip("=")


def _refused() -> InvalidArgument:
    return InvalidArgument.field(
        "page_token", "is not a token this service issued", reason="INVALID_PAGE_TOKEN"
    )


def _key(token: str, filters: tuple[object, ...], max_length: int) -> bytes:
    if len(token) > max_length:
        raise _refused()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, binascii.Error) as exc:
        raise _refused() from exc
    if len(raw) <= _FINGERPRINT:
        raise _refused()
    if raw[:_FINGERPRINT] != _fingerprint(filters):
        raise InvalidArgument.field(
            "page_token",
            "was issued for other filters; send the same filters as the first page",
            reason="PAGE_TOKEN_FILTER_MISMATCH",
        )
    return raw[_FINGERPRINT:]


def decode(token: str, filters: tuple[object, ...]) -> int:
    """The id the last page ended at (0 for the first page)."""
    if token == "":
        return 0
    if len(token) != _ID_TOKEN_LENGTH:
        raise _refused()
    return int.from_bytes(_key(token, filters, _ID_TOKEN_LENGTH), "big")


def decode_text(token: str, filters: tuple[object, ...]) -> str:
    """The text key the last page ended at ("" for the first page)."""
    if token == "":
        return ""
    key = _key(token, filters, 4 * (_FINGERPRINT + _MAX_TEXT_KEY) // 3 + 3)
    try:
        return key.decode()
    except UnicodeDecodeError as exc:
        raise _refused() from exc
