"""The one place where the domain's exceptions become gRPC status codes with google.rpc details."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

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
    (errors.EtagMismatch, code_pb2.ABORTED),
    (errors.FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (errors.StorageUnavailable, code_pb2.UNAVAILABLE),
)


# Details travel in a trailer, and peers refuse trailers over 16 KiB: an error that echoes a huge
# input must still arrive, so echoed text is clipped.
_MAX_MESSAGE = 1024
_MAX_VALUE = 200


def _clip(text: str, limit: int = _MAX_VALUE) -> str:
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} chars)"


# What all violations of one error may add up to: the trailer carries them base64-encoded.
_VIOLATIONS_BUDGET = 8000


def _fitting(violations, size) -> list:
    """The leading violations whose clipped text fits the budget (at least one)."""
    kept, used = [], 0
    for violation in violations:
        used += size(violation)
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


def to_status(exc: errors.ModelConfigError) -> status_pb2.Status:
    code = code_of(exc)
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=exc.reason,
                domain=DOMAIN,
                metadata={k: _clip(v) for k, v in list(exc.metadata.items())[:20]},
            )
        )
    ]
    if exc.field_violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=_clip(v.field), description=_clip(v.description, 400)
                        )
                        for v in _fitting(
                            exc.field_violations, lambda v: len(v.field) + len(v.description)
                        )
                    ]
                )
            )
        )
    if isinstance(exc, errors.FailedPrecondition) and exc.violations:
        details.append(
            _pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type=v.type,
                            subject=_clip(v.subject),
                            description=_clip(v.description, 400),
                        )
                        for v in _fitting(
                            exc.violations, lambda v: len(v.subject) + len(v.description)
                        )
                    ]
                )
            )
        )
    return status_pb2.Status(code=code, message=_clip(exc.message, _MAX_MESSAGE), details=details)


@contextmanager
def statuses(context: grpc.ServicerContext, method: str) -> Iterator[None]:
    """Run a handler: a domain error aborts with its status; a bug aborts with INTERNAL, logged."""
    try:
        yield
    except errors.ModelConfigError as exc:
        context.abort_with_status(rpc_status.to_status(to_status(exc)))
    except Exception:
        if context.code() is not None:
            raise  # already aborted by the handler itself
        log.exception("unexpected error in %s", method)
        status = status_pb2.Status(
            code=code_pb2.INTERNAL,
            message=f"internal error in {method}; the daemon's log has the details",
            details=[_pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN))],
        )
        context.abort_with_status(rpc_status.to_status(status))
