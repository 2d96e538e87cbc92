"""Who is calling and why: the Origin a write records, from the caller and the metadata.

The actor is the caller's token name or certificate common name (auth.py); on an open daemon,
which knows no names, the caller's address without its port, e.g. `ipv4:127.0.0.1`.
"""

from __future__ import annotations

import uuid

import grpc

from ..domain import validation
from ..domain.access import Principal
from ..domain.changes import Origin
from .auth import actor_of

REQUEST_ID = "x-request-id"
CHANGE_REASON = "x-change-reason"


def request_origin(context: grpc.ServicerContext, caller: Principal, method: str) -> Origin:
    """The write's origin; its request id (the caller's, or a new one) goes back as metadata."""
    metadata = {key: value for key, value in context.invocation_metadata() or ()}
    request_id = metadata.get(REQUEST_ID) or uuid.uuid4().hex
    reason = metadata.get(CHANGE_REASON, "")
    validation.request_metadata(request_id, reason)
    context.send_initial_metadata(((REQUEST_ID, request_id),))
    actor = caller.name or actor_of(context.peer() or "")
    return Origin(actor, method, request_id, reason, caller.role)
