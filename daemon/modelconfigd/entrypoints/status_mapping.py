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
    (errors.TooManyWatchers, code_pb2.RESOURCE_EXHAUSTED),
    (errors.StorageUnavailable, code_pb2.UNAVAILABLE),
    (errors.Draining, code_pb2.UNAVAILABLE),
)


# The status travels in trailers that peers refuse beyond 16 KiB: the details base64-encoded,
# the message percent-encoded (up to 3x). Echoed input is clipped by UTF-8 bytes and
# violations are kept while they fit, so an error about a huge input still arrives whole.
_MAX_MESSAGE_BYTES = 1024
_MAX_VALUE_BYTES = 200
_MAX_METADATA = 20
_VIOLATIONS_BUDGET = 4000
_MAX_DETAILS_BYTES = 8000


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
    metadata = {_clip(k, 64): _clip(v) for k, v in list(exc.metadata.items())[:_MAX_METADATA]}
    return _pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=metadata))


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
    status = status_pb2.Status(
        code=code_of(exc), message=_clip(exc.message, _MAX_MESSAGE_BYTES), details=details
    )
    if status.ByteSize() > _MAX_DETAILS_BYTES:
        del status.details[1:]  # the ErrorInfo alone still says what and why
    return status


def abort(context: grpc.ServicerContext, method: str, exc: Exception) -> NoReturn:
    """End a call with the status for `exc`: a domain error's own, else INTERNAL (logged)."""
    if isinstance(exc, errors.ModelConfigError):
        context.abort_with_status(rpc_status.to_status(to_status(exc)))
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
