"""The one place where the domain's exceptions become gRPC status codes with google.rpc details."""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..domain import errors

log = logging.getLogger(__name__)

DOMAIN = "modelconfig"

# Most specific first: a condition maps to the code of its nearest listed ancestor.
_CODES: tuple[tuple[type[errors.ModelConfigError], int], ...] = (
    (errors.InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (errors.NotFound, code_pb2.NOT_FOUND),
    (errors.AlreadyExists, code_pb2.ALREADY_EXISTS),
    (errors.Aborted, code_pb2.ABORTED),
    (errors.FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (errors.Unauthenticated, code_pb2.UNAUTHENTICATED),
    (errors.PermissionDenied, code_pb2.PERMISSION_DENIED),
    (errors.OutOfRange, code_pb2.OUT_OF_RANGE),
    (errors.ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
    # gRPC's own definition of RESOURCE_EXHAUSTED names "the entire file system is out of
    # space"; unlike UNAVAILABLE it tells clients that retrying soon will not help: space must
    # be freed first.
    (errors.StorageFull, code_pb2.RESOURCE_EXHAUSTED),
    (errors.StorageUnavailable, code_pb2.UNAVAILABLE),
    (errors.Draining, code_pb2.UNAVAILABLE),
)


# The status travels in trailers: the details base64-encoded (4/3), the message percent-encoded
# (up to 3x), and the message once more inside the details. gRPC peers refuse trailers over
# 16 KiB, and a random share of those over 8 KiB (grpc.max_metadata_size, the soft limit: the
# client then sees RESOURCE_EXHAUSTED instead of the status). So the whole stays under
# _TRAILER_BUDGET: echoed input is clipped by UTF-8 bytes, metadata and violations are kept
# while they fit, so that an error about a huge input still arrives whole.
_TRAILER_BUDGET = 7000
_MAX_MESSAGE_BYTES = 1024
_MAX_VALUE_BYTES = 200
_MAX_METADATA = 20
_METADATA_BUDGET = 1500
_VIOLATIONS_BUDGET = 1500


def _clip(text: str, limit: int = _MAX_VALUE_BYTES) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    kept = raw[: limit - 24].decode(errors="ignore")
    return f"{kept}... ({len(raw)} bytes)"


def _fitting(violations, texts) -> list:
    """The leading violations whose clipped text fits the budget (at least one)."""
    kept, used = [], 0
    for violation in violations:
        used += sum(len(t.encode()) for t in texts(violation))
        if kept and used > _VIOLATIONS_BUDGET:
            break
        kept.append(violation)
    return kept


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def code_of(exc: errors.ModelConfigError) -> int:
    """The google.rpc.Code of a condition."""
    return next(c for cls, c in _CODES if isinstance(exc, cls))


def _error_info(exc: errors.ModelConfigError) -> any_pb2.Any:
    metadata, used = {}, 0
    for key, value in list(exc.metadata.items())[:_MAX_METADATA]:
        key, value = _clip(key, 64), _clip(value)
        used += len(key.encode()) + len(value.encode())
        if metadata and used > _METADATA_BUDGET:
            break
        metadata[key] = value
    return _pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=metadata))


def _percent_encoded_length(message: str) -> int:
    """The length of grpc-message on the wire: bytes outside printable ASCII, and %, take 3."""
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message.encode())


def _bad_request(exc: errors.ModelConfigError) -> any_pb2.Any:
    violations = [
        error_details_pb2.BadRequest.FieldViolation(
            field=_clip(v.field), description=_clip(v.description, 400)
        )
        for v in exc.field_violations
    ]
    kept = _fitting(violations, lambda v: (v.field, v.description))
    return _pack(error_details_pb2.BadRequest(field_violations=kept))


def _precondition_failure(exc: errors.FailedPrecondition) -> any_pb2.Any:
    violations = [
        error_details_pb2.PreconditionFailure.Violation(
            type=v.type, subject=_clip(v.subject), description=_clip(v.description, 400)
        )
        for v in exc.violations
    ]
    kept = _fitting(violations, lambda v: (v.type, v.subject, v.description))
    return _pack(error_details_pb2.PreconditionFailure(violations=kept))


def to_status(exc: errors.ModelConfigError) -> status_pb2.Status:
    details = [_error_info(exc)]
    if exc.field_violations:
        details.append(_bad_request(exc))
    if isinstance(exc, errors.FailedPrecondition) and exc.violations:
        details.append(_precondition_failure(exc))
    message = _clip(exc.message, _MAX_MESSAGE_BYTES)
    status = status_pb2.Status(code=code_of(exc), message=message, details=details)
    # What base64 leaves of the budget once the message has taken its share (at least 2.9 KB:
    # room for the message and a full ErrorInfo).
    room = (_TRAILER_BUDGET - _percent_encoded_length(message)) * 3 // 4
    if status.ByteSize() > room:
        del status.details[1:]  # the ErrorInfo alone still says what and why
    return status


def abort(context: grpc.ServicerContext, method: str, exc: Exception) -> NoReturn:
    """End a call with the status for `exc`: a domain error's own, else INTERNAL (logged)."""
    if isinstance(exc, errors.ModelConfigError):
        context.abort_with_status(rpc_status.to_status(to_status(exc)))
    if isinstance(exc, grpc.RpcError):
        # A client stream's messages ended in an error: the caller cancelled, or sent a message
        # over the size limit, which gRPC has already answered. Nobody waits for this status.
        log.info("%s ended by its caller or by gRPC before the answer", method)
        context.abort(grpc.StatusCode.CANCELLED, "the call ended before its answer")
    log.error("unexpected error in %s", method, exc_info=exc)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL,
        message=f"internal error in {method}; the daemon's log has the details",
        details=[_pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN))],
    )
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returns only by raising")  # pragma: no cover


# JSON over HTTP (http_api.py): the HTTP status of each code, google.rpc's own mapping (as in
# google/rpc/code.proto and grpc-gateway).
HTTP_STATUS: dict[int, int] = {
    code_pb2.OK: 200,
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
    code_pb2.UNAUTHENTICATED: 401,
}


def plain_status(code: int, message: str, reason: str, **metadata: str) -> status_pb2.Status:
    """A status for a refusal of the HTTP layer itself (no such route, a method the route does
    not take): the code and an ErrorInfo, as every other error has."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)
    return status_pb2.Status(code=code, message=message, details=[_pack(info)])


def status_of_abort(status: grpc.Status) -> status_pb2.Status:
    """The google.rpc.Status that `abort` above put into a call's trailers."""
    for key, value in status.trailing_metadata or ():
        if key == rpc_status.GRPC_DETAILS_METADATA_KEY:
            return status_pb2.Status.FromString(value)
    return status_pb2.Status(code=status.code.value[0], message=status.details or "")
