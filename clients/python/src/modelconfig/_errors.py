"""Typed errors of the modelconfig client: a class per status code, and below it a class per
ErrorInfo reason a caller may want to handle apart (the reason decides, not the code alone).

ModelConfigError                 any failed call; .code, .reason, .metadata, .details
├── InvalidArgument              INVALID_ARGUMENT: the request is malformed (.field_violations)
├── NotFound                     NOT_FOUND
│   ├── ModelNotFound            MODEL_NOT_FOUND
│   ├── OverrideNotFound         OVERRIDE_NOT_FOUND (also GLOBAL_SETTING_NOT_FOUND)
│   └── ChangeNotFound           CHANGE_NOT_FOUND
├── AlreadyExists                ALREADY_EXISTS: MODEL_NAME_TAKEN, SLOT_NAME_TAKEN
├── Aborted                      ABORTED: retrying may succeed
│   ├── EtagMismatch             ETAG_MISMATCH: the etag is stale; read again and retry
│   ├── ImportInProgress         IMPORT_IN_PROGRESS: one bulk write at a time; retry later
│   ├── CatalogChanged           CATALOG_CHANGED: the catalog moved during an import; run again
│   └── RevisionMoved            REVISION_MOVED: the daemon moved since a configuration was
│                                compared; compare again
├── FailedPrecondition           FAILED_PRECONDITION: the state forbids the change (.violations)
│   ├── SlotRefusesModel         PROVIDER_MISMATCH, MODEL_TYPE_MISMATCH, MODEL_INACTIVE,
│   │                            SUCCESSOR_MISMATCH: the model does not fit
│   ├── ModelInUse               MODEL_IN_USE, SLOT_IN_USE: something still uses it
│   └── NotRevertible            CHANGED_SINCE, NOT_REVERTIBLE: a revert that cannot be made
├── Unauthenticated              UNAUTHENTICATED
├── PermissionDenied             PERMISSION_DENIED
├── OutOfRange                   OUT_OF_RANGE: a watch's revision is compacted or ahead
├── ResourceExhausted            RESOURCE_EXHAUSTED: a limit of the daemon (TOO_MANY_WATCHERS,
│   │                            TOO_MANY_UPLOADS: try again once others are done)
│   └── StorageFull              STORAGE_FULL: the database's disk is full; retrying will not
│                                help until space is freed
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


class Aborted(ModelConfigError):
    pass


class EtagMismatch(Aborted):
    pass


class ImportInProgress(Aborted):
    pass


class CatalogChanged(Aborted):
    pass


class RevisionMoved(Aborted):
    pass


class FailedPrecondition(ModelConfigError):
    pass


class SlotRefusesModel(FailedPrecondition):
    pass


class ModelInUse(FailedPrecondition):
    pass


class NotRevertible(FailedPrecondition):
    pass


class ModelNotFound(NotFound):
    pass


class OverrideNotFound(NotFound):
    pass


class ChangeNotFound(NotFound):
    pass


class Unauthenticated(ModelConfigError):
    pass


class PermissionDenied(ModelConfigError):
    pass


class OutOfRange(ModelConfigError):
    pass


class ResourceExhausted(ModelConfigError):
    pass


class StorageFull(ResourceExhausted):
    pass


class Unavailable(ModelConfigError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[ModelConfigError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}

# The reasons with a class of their own; any other reason takes its code's class.
_BY_REASON: dict[tuple[grpc.StatusCode, str], type[ModelConfigError]] = {
    **{
        (grpc.StatusCode.ABORTED, reason): cls
        for reason, cls in (
            ("ETAG_MISMATCH", EtagMismatch),
            ("IMPORT_IN_PROGRESS", ImportInProgress),
            ("CATALOG_CHANGED", CatalogChanged),
            ("REVISION_MOVED", RevisionMoved),
        )
    },
    **{
        (grpc.StatusCode.FAILED_PRECONDITION, reason): cls
        for reason, cls in (
            ("PROVIDER_MISMATCH", SlotRefusesModel),
            ("MODEL_TYPE_MISMATCH", SlotRefusesModel),
            ("MODEL_INACTIVE", SlotRefusesModel),
            ("SUCCESSOR_MISMATCH", SlotRefusesModel),
            ("MODEL_IN_USE", ModelInUse),
            ("SLOT_IN_USE", ModelInUse),
            ("CHANGED_SINCE", NotRevertible),
            ("NOT_REVERTIBLE", NotRevertible),
        )
    },
    **{
        (grpc.StatusCode.NOT_FOUND, reason): cls
        for reason, cls in (
            ("MODEL_NOT_FOUND", ModelNotFound),
            ("OVERRIDE_NOT_FOUND", OverrideNotFound),
            ("GLOBAL_SETTING_NOT_FOUND", OverrideNotFound),
            ("CHANGE_NOT_FOUND", ChangeNotFound),
        )
    },
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_FULL"): StorageFull,
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
    reason, metadata = "", dict[str, str]()
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
    cls = _BY_REASON.get((code, reason)) or _BY_CODE.get(code, ModelConfigError)
    return cls(message or code.name, code=code, reason=reason, metadata=metadata, details=details)


@contextmanager
def typed_errors() -> Iterator[None]:
    """Re-raise a grpc.RpcError as the matching ModelConfigError."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc
