"""Who is calling, and whether their role allows the RPC: bearer tokens and client certificates.

Every `modelconfig.v1` RPC is checked here before its request is decoded; health and
reflection stay open (probes need the one, grpcurl the other, and descriptors are no secret).
Without a tokens file and without client certificates there is nothing to check against: every
caller may do everything, which is why the daemon then serves loopback only (see main.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc

from ..domain.access import Principal, Role, require
from ..domain.errors import PermissionDenied, Unauthenticated
from .tokens import Tokens

log = logging.getLogger(__name__)

READER, WRITER, ADMIN = Role.READER, Role.WRITER, Role.ADMIN
# The least role each RPC needs. SetModel also needs admin for a global setting: the use case
# checks that, since it depends on the request's scope.
REQUIRED_ROLES = {
    "ListModels": READER,
    "GetModel": READER,
    "GetGlobalSettings": READER,
    "ResolveForAccount": READER,
    "ResolveForAccounts": READER,
    "GetModelUsage": READER,
    "ListSlots": READER,
    "ListChanges": READER,
    "WatchChanges": READER,
    "EstimateCost": READER,
    "ListAccounts": READER,
    "ExportConfiguration": READER,
    "SetModel": WRITER,
    "ClearAccountModel": WRITER,
    "ImportOverrides": WRITER,
    "CreateModel": ADMIN,
    "UpdateModel": ADMIN,
    "DeleteModel": ADMIN,
    "ClearGlobalModel": ADMIN,
    "CreateSlot": ADMIN,
    "UpdateSlot": ADMIN,
    "RevertChange": ADMIN,
    "RetireModel": ADMIN,
    "ApplyConfiguration": ADMIN,
}
# The caller of an open daemon: named by its address when it writes (see request_origin.py).
ANYONE = Principal("", ADMIN)
_BEARER = "bearer "


def actor_of(peer: str) -> str:
    """`ipv4:127.0.0.1:54321` -> `ipv4:127.0.0.1`; `ipv6:[::1]:54321` -> `ipv6:[::1]`."""
    kind, _, address = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or ":" not in address:
        return "local"
    return f"{kind}:{address.rpartition(':')[0]}"


def _authorization(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None


def _bearer_token(header: str) -> str:
    """The token of an `authorization: Bearer <token>` header; "" if it is not a bearer."""
    return header[len(_BEARER) :].strip() if header.lower().startswith(_BEARER) else ""


def _common_name(context: grpc.ServicerContext) -> str | None:
    names = context.auth_context().get("x509_common_name")
    return names[0].decode() if names else None


class Guard:
    """Checks each call's credentials against the tokens file (reloadable) and the RPC's role."""

    def __init__(
        self,
        tokens: Tokens | None,
        client_certificates: bool,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._tokens = tokens
        self._client_certificates = client_certificates
        self._on_refused = on_refused or (lambda reason: None)

    @property
    def checks(self) -> bool:
        """Whether any call can be refused (else every caller may do everything)."""
        return self._tokens is not None or self._client_certificates

    def replace_tokens(self, tokens: Tokens) -> None:
        self._tokens = tokens  # one reference: calls see the old tokens or the new, whole

    def checker(self, method: str) -> Callable[[grpc.ServicerContext], Principal]:
        """A check for one method (its required role looked up once): the caller, if their
        credentials are known and their role allows `method`; refusals raise."""
        required = REQUIRED_ROLES[method]
        slow = self._check

        def check(context: grpc.ServicerContext) -> Principal:
            tokens = self._tokens
            if tokens is not None:  # the hot path: a token already verified, a role that fits
                for key, value in context.invocation_metadata() or ():
                    if key == "authorization":
                        principal = tokens.known.get(value)
                        if principal is not None and principal.role >= required:
                            return principal
                        break
            return slow(context, method)

        return check

    def _check(self, context: grpc.ServicerContext, method: str) -> Principal:
        principal = None
        try:
            principal = self._identify(context)
            require(principal.role, REQUIRED_ROLES[method], method)
        except (Unauthenticated, PermissionDenied) as exc:
            self.refused(context, method, exc, principal)
            raise
        return principal

    def identify(self, context: grpc.ServicerContext) -> Principal:
        """Who the caller is, whatever they may do (GET /v1/caller); Unauthenticated if their
        credentials are missing or unknown to a daemon that checks them."""
        return self._identify(context)

    def _identify(self, context: grpc.ServicerContext) -> Principal:
        tokens = self._tokens
        header = _authorization(context) if tokens is not None else None
        token = _bearer_token(header) if header is not None else ""
        if tokens is not None and header is not None and token:
            principal = tokens.by_token(token)
            if principal is None:
                raise Unauthenticated(
                    "the bearer token is not one this daemon knows", reason="TOKEN_UNKNOWN"
                )
            tokens.remember(header, principal)
            return principal
        common_name = _common_name(context) if self._client_certificates else None
        if common_name is not None:
            if tokens is None:
                return Principal(common_name, ADMIN)
            principal = tokens.by_common_name(common_name)
            if principal is not None:
                return principal
        if tokens is None:
            return ANYONE
        raise Unauthenticated(
            "no credentials: send `authorization: Bearer <token>` metadata"
            + (", or a client certificate the tokens file names" if common_name else ""),
            reason="TOKEN_MISSING",
            metadata={"common_name": common_name} if common_name else None,
        )

    def refused(
        self,
        context: grpc.ServicerContext,
        method: str,
        exc: Exception,
        principal: Principal | None,
    ) -> None:
        """Count and log a refusal: this guard's, or a use case's (a global SetModel needs
        admin, which only the request's scope tells)."""
        reason = getattr(exc, "reason", "")
        self._on_refused(reason)
        peer = context.peer() or ""
        actor = principal.name if principal is not None else "-"
        log.warning(
            "refused %s for %s from %s: %s: %s",
            method,
            actor,
            peer,
            reason,
            exc,
            extra={"rpc": method, "actor": actor, "peer": peer, "refusal": reason},
        )
