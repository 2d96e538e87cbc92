"""The tokens file: which callers exist, by token digest or certificate name, and their roles.

```toml
[[tokens]]
name = "checkout-service"   # the actor recorded for its changes
role = "reader"             # reader | writer | admin
sha256 = "<hex SHA-256 of the token>"

[[tokens]]
name = "billing-batch"
role = "writer"
common_name = "billing-batch"   # a client certificate's subject CN (mutual TLS), no token
```

The file holds only digests: a token is looked up by the SHA-256 of what the caller sent, and
the digest found is compared again in constant time. `modelconfigctl tokens new` makes tokens.
"""

from __future__ import annotations

import hmac
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelconfig.tokens import digest_of

from ..domain.access import Principal, Role

_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MAX_NAME = 100
ROLES = {role.label: role for role in Role}


class TokensFileError(ValueError):
    """A tokens file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Caller:
    principal: Principal
    digest: bytes | None = None  # SHA-256 of the token
    common_name: str | None = None


class Tokens:
    """The callers of one tokens file, immutable; reloading builds a new one."""

    # Bounds `known`: only headers whose token was verified enter it, so it holds a few per token.
    MAX_KNOWN = 1024

    def __init__(self, callers: Iterable[Caller]) -> None:
        callers = list(callers)
        self._by_digest = {c.digest: c for c in callers if c.digest is not None}
        self._by_common_name = {c.common_name: c for c in callers if c.common_name}
        self.count = len(callers)
        # `authorization` header values already verified -> their caller: a repeated call is
        # one dictionary look-up instead of a SHA-256 and a comparison (the hot path). A header
        # is compared with the ones here only when their (randomly keyed) hashes collide, which
        # tells nothing about any token. Reloading the file makes a new, empty one.
        self.known: dict[str, Principal] = {}

    def remember(self, header: str, principal: Principal) -> None:
        if len(self.known) < self.MAX_KNOWN:
            self.known[header] = principal

    def by_token(self, token: str) -> Principal | None:
        digest = digest_of(token)
        caller = self._by_digest.get(digest)
        if caller is None or not hmac.compare_digest(caller.digest or b"", digest):
            return None
        return caller.principal

    def by_common_name(self, common_name: str) -> Principal | None:
        caller = self._by_common_name.get(common_name)
        return None if caller is None else caller.principal


def load_tokens(path: str) -> Tokens:
    """The callers a tokens file names; TokensFileError if it cannot be read or is malformed."""
    try:
        document = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise TokensFileError(f"cannot read the tokens file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TokensFileError(f"the tokens file {path} is not TOML: {exc}") from exc
    entries = document.get("tokens", [])
    if not isinstance(entries, list) or set(document) - {"tokens"}:
        raise TokensFileError(f"{path}: expected only [[tokens]] entries")
    callers = [_caller(path, i, entry) for i, entry in enumerate(entries, start=1)]
    for key in ("name", "digest", "common_name"):
        seen: set[object] = set()
        for caller in callers:
            value = caller.principal.name if key == "name" else getattr(caller, key)
            if value is not None and value in seen:
                raise TokensFileError(f"{path}: two entries have the same {key} {value!r}")
            seen.add(value)
    return Tokens(callers)


def _caller(path: str, index: int, entry: object) -> Caller:
    where = f"{path}: entry {index}"
    if not isinstance(entry, dict):
        raise TokensFileError(f"{where}: expected a table")
    unknown = set(entry) - {"name", "role", "sha256", "common_name"}
    if unknown:
        raise TokensFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise TokensFileError(f"{where}: name must be 1-{_MAX_NAME} characters")
    if not name.isprintable():
        raise TokensFileError(f"{where}: name must be printable")
    role = ROLES.get(entry.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise TokensFileError(f"{where} ({name}): role must be one of {', '.join(ROLES)}")
    sha256, common_name = entry.get("sha256"), entry.get("common_name")
    if (sha256 is None) == (common_name is None):
        raise TokensFileError(f"{where} ({name}): give exactly one of sha256 and common_name")
    if sha256 is not None and not (isinstance(sha256, str) and _HEX_DIGEST.fullmatch(sha256)):
        raise TokensFileError(f"{where} ({name}): sha256 must be 64 lower-case hex digits")
    if common_name is not None and not (isinstance(common_name, str) and common_name):
        raise TokensFileError(f"{where} ({name}): common_name must be a non-empty string")
    return Caller(
        Principal(name, role),
        digest=bytes.fromhex(sha256) if sha256 else None,
        common_name=common_name,
    )
