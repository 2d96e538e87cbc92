"""Who is calling and why: the Origin a write records, from the call's peer and metadata.

Until callers authenticate (a later issue), the actor is the caller's address without its
port, e.g. `ipv4:127.0.0.1`; `local` for callers on a Unix socket or whose address is unknown.
"""

from __future__ import annotations

import uuid

import grpc

from ..domain import validation
from ..domain.changes import Origin

REQUEST_ID = "x-request-id"
CHANGE_REASON = "x-change-reason"


def actor_of(peer: str) -> str:
    """`ipv4:127.0.0.1:54321` -> `ipv4:127.0.0.1`; `ipv6:[::1]:54321` -> `ipv6:[::1]`."""
    kind, _, address = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or ":" not in address:
        return "local"
    return f"{kind}:{address.rpartition(':')[0]}"


def request_origin(context: grpc.ServicerContext, method: str) -> Origin:
    """The write's origin; its request id (the caller's, or a new one) goes back as metadata."""
    metadata = {key: value for key, value in context.invocation_metadata() or ()}
    request_id = metadata.get(REQUEST_ID) or uuid.uuid4().hex
    reason = metadata.get(CHANGE_REASON, "")
    validation.request_metadata(request_id, reason)
    context.send_initial_metadata(((REQUEST_ID, request_id),))
    return Origin(actor_of(context.peer() or ""), method, request_id, reason)
