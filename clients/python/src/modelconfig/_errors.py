"""Typed errors of the modelconfig client, one per gRPC status the daemon answers with.

ModelConfigError                 any failed call; .code, .reason, .metadata, .details
├── InvalidArgument              INVALID_ARGUMENT: the request is malformed (.field_violations)
├── NotFound                     NOT_FOUND: no such model or override
├── AlreadyExists                ALREADY_EXISTS: a model name or alias is taken
├── EtagMismatch                 ABORTED: the etag is stale; read again and retry
├── FailedPrecondition           FAILED_PRECONDITION: the state forbids the change (.violations)
├── Unauthenticated              UNAUTHENTICATED
├── PermissionDenied             PERMISSION_DENIED
├── OutOfRange                   OUT_OF_RANGE: a watch's revision is compacted or ahead
└── Unavailable                  UNAVAILABLE or DEADLINE_EXCEEDED: try again later
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from google.protobuf import message as _message
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class ModelConfigError(Exception):
    """A call to the daemon failed; `reason` is the ErrorInfo reason (UPPER_SNAKE)."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        details: list[_message.Message] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = metadata or {}
        self.details = details or []

    @property
    def field_violations(self) -> list[error_details_pb2.BadRequest.FieldViolation]:
        return [
            v
            for d in self.details
            if isinstance(d, error_details_pb2.BadRequest)
            for v in d.field_violations
        ]

    @property
    def violations(self) -> list[error_details_pb2.PreconditionFailure.Violation]:
        return [
            v
            for d in self.details
            if isinstance(d, error_details_pb2.PreconditionFailure)
            for v in d.violations
        ]

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}" if self.reason else self.message


class InvalidArgument(ModelConfigError):
    pass


class NotFound(ModelConfigError):
    pass


class AlreadyExists(ModelConfigError):
    pass


class EtagMismatch(ModelConfigError):
    pass


class FailedPrecondition(ModelConfigError):
    pass


class Unauthenticated(ModelConfigError):
    pass


class PermissionDenied(ModelConfigError):
    pass


class OutOfRange(ModelConfigError):
    pass


class Unavailable(ModelConfigError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[ModelConfigError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: EtagMismatch,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}

_DETAIL_TYPES = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest,
    error_details_pb2.PreconditionFailure,
)


def from_rpc_error(error: grpc.RpcError) -> ModelConfigError:
    """The typed error for a failed call, with the google.rpc details unpacked."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = error.details() if isinstance(error, grpc.Call) else str(error)
    details: list[_message.Message] = []
    reason, metadata = "", {}
    try:
        status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None
    except ValueError:
        # The details disagree with the call's code (e.g. a proxy replaced the status): trust
        # the code, drop the details.
        status = None
    if status is not None:
        message = status.message
        for packed in status.details:
            for detail_type in _DETAIL_TYPES:
                if packed.Is(detail_type.DESCRIPTOR):
                    detail = detail_type()
                    packed.Unpack(detail)
                    details.append(detail)
                    if isinstance(detail, error_details_pb2.ErrorInfo):
                        reason, metadata = detail.reason, dict(detail.metadata)
    cls = _BY_CODE.get(code, ModelConfigError)
    return cls(message or code.name, code=code, reason=reason, metadata=metadata, details=details)


@contextmanager
def typed_errors() -> Iterator[None]:
    """Re-raise a grpc.RpcError as the matching ModelConfigError."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc
