"""The hot path's serializer: ResolveForAccount(s) responses assembled from cached wire bytes.

The bytes are exactly what protobuf itself produces for the same message (the tests compare
them). Building them from pieces cached per State (see wire_cache.py), shared by every account
that resolves alike, spares constructing and serializing a message tree on every call.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from modelconfig.v1 import model_config_service_pb2 as api

from ..domain.errors import ModelConfigError
from ..domain.state import Resolved, ResolvedView
from ..service_layer.services import BatchResolution, Resolution
from .convert import resolved_to_pb
from .status_mapping import code_of
from .wire_cache import SnapshotWire


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are ten-byte two's complement varints
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


_SMALL_VARINTS = [_varint(n) for n in range(1 << 14)]  # every length a field here can have


def _tag(message: Descriptor, field: str) -> bytes:
    descriptor = message.fields_by_name[field]
    length_delimited = descriptor.type in (
        FieldDescriptor.TYPE_STRING,
        FieldDescriptor.TYPE_MESSAGE,
        FieldDescriptor.TYPE_BYTES,
    )
    return _varint(descriptor.number << 3 | (2 if length_delimited else 0))


_SINGLE = api.ResolveForAccountResponse.DESCRIPTOR
_BATCH = api.ResolveForAccountsResponse.DESCRIPTOR
_ENTRY = api.AccountResolution.DESCRIPTOR
SINGLE_ACCOUNT = _tag(_SINGLE, "account_id")
SINGLE_SLOT = _tag(_SINGLE, "slots")
SINGLE_REVISION = _tag(_SINGLE, "revision")
SINGLE_ETAG = _tag(_SINGLE, "etag")
BATCH_RESULT = _tag(_BATCH, "results")
BATCH_REVISION = _tag(_BATCH, "revision")
ENTRY_ACCOUNT = _tag(_ENTRY, "account_id")
ENTRY_SLOT = _tag(_ENTRY, "slots")
ENTRY_ETAG = _tag(_ENTRY, "etag")
ENTRY_ERROR = _tag(_ENTRY, "error")
assert SINGLE_SLOT == ENTRY_SLOT, "slot frames are shared by both responses"


def _field(tag: bytes, payload: bytes) -> bytes:
    if not payload:
        return b""
    size = len(payload)
    return tag + (_SMALL_VARINTS[size] if size < 1 << 14 else _varint(size)) + payload


def _slot_frames(wire: SnapshotWire, view: ResolvedView) -> bytes:
    return b"".join(
        wire.piece(("slot frame", r), lambda r=r: _field(SINGLE_SLOT, _resolved(r)))
        for r in view.slots
    )


def _resolved(r: Resolved) -> bytes:
    return resolved_to_pb(r).SerializeToString()


def _view_tail(wire: SnapshotWire, view: ResolvedView) -> bytes:
    """Everything of a single response after the account id."""
    return (
        _slot_frames(wire, view)
        + SINGLE_REVISION
        + _varint(wire.state.revision)
        + _field(SINGLE_ETAG, view.etag.encode())
    )


def encode_resolution(resolution: Resolution, wire: SnapshotWire) -> bytes:
    """A serialized ResolveForAccountResponse; `wire` belongs to the resolution's State."""
    account_id, view, _ = resolution
    tail = wire.piece(("single", view), lambda: _view_tail(wire, view))
    return _field(SINGLE_ACCOUNT, account_id.encode()) + tail


def _entry(wire: SnapshotWire, account_id: str, outcome: ResolvedView | ModelConfigError) -> bytes:
    if isinstance(outcome, ModelConfigError):
        error = api.AccountError(
            code=code_of(outcome), reason=outcome.reason, message=outcome.message
        )
        body = _field(ENTRY_ERROR, error.SerializeToString())
    else:
        body = wire.piece(
            ("entry", outcome),
            lambda: _slot_frames(wire, outcome) + _field(ENTRY_ETAG, outcome.etag.encode()),
        )
    return _field(BATCH_RESULT, _field(ENTRY_ACCOUNT, account_id.encode()) + body)


def encode_batch(batch: BatchResolution, wire: SnapshotWire) -> bytes:
    """A serialized ResolveForAccountsResponse; `wire` belongs to the batch's State."""
    entries = b"".join(_entry(wire, a, outcome) for a, outcome in batch.results)
    return entries + BATCH_REVISION + _varint(batch.state.revision)
