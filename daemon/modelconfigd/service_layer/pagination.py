"""Opaque AIP-158 page tokens: the last id served, bound to the filters it was issued for."""

from __future__ import annotations

import base64
import hashlib
import json

from ..domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument.field(
            "page_size", f"{requested} is negative", reason="INVALID_PAGE_SIZE", page_size=requested
        )
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _fingerprint(filters: tuple[object, ...]) -> str:
    return hashlib.sha256(repr(filters).encode()).hexdigest()[:16]


def encode(after_id: int, filters: tuple[object, ...]) -> str:
    body = json.dumps({"after": after_id, "filters": _fingerprint(filters)})
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(token: str, filters: tuple[object, ...]) -> int:
    """The id to continue after (0 for the first page)."""
    if token == "":
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = body["after"]
        issued_for = body["filters"]
        if not isinstance(after, int) or after < 0:
            raise ValueError(after)
    except (ValueError, KeyError, TypeError) as exc:
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
