"""Who may do what: the roles a caller can hold, and the principal a call is made by."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import PermissionDenied


class Role(enum.IntEnum):
    """Each role may do everything the roles below it may."""

    READER = 1  # reads and resolves
    WRITER = 2  # also sets, clears and imports account overrides
    ADMIN = 3  # also the catalog, slots, global settings and reverts

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """The caller: a token's name, a client certificate's common name, or an address."""

    name: str
    role: Role


def require(principal_role: Role, required: Role, what: str) -> None:
    """PermissionDenied unless `principal_role` is at least `required`."""
    if principal_role < required:
        raise PermissionDenied(
            f"{what} needs the {required.label} role; this caller has {principal_role.label}",
            metadata={"role": principal_role.label, "required_role": required.label},
        )
