"""The daemon's exceptions, named after the condition; the gRPC layer maps them to status codes.

ModelConfigError                      every condition a client can cause
├── InvalidArgument                   the request itself is malformed (INVALID_ARGUMENT)
├── NotFound                          a named thing does not exist (NOT_FOUND)
│   ├── ModelNotFound
│   ├── SlotNotFound
│   ├── OverrideNotFound
│   ├── GlobalSettingNotFound
│   └── ChangeNotFound
├── AlreadyExists                     a name or alias is taken (ALREADY_EXISTS)
├── Aborted                           a concurrent change got in the way; retry (ABORTED)
│   ├── EtagMismatch                  a write precondition is stale
│   ├── ImportInProgress              another import is running
│   └── StreamIdle                    a client stream sent nothing for too long
├── Unauthenticated                   no credentials, or unknown ones (UNAUTHENTICATED)
├── PermissionDenied                  the caller's role is too weak (PERMISSION_DENIED)
├── FailedPrecondition                the state forbids the change (FAILED_PRECONDITION)
│   ├── ProviderMismatch
│   ├── ModelTypeMismatch
│   ├── ModelInactive
│   ├── ModelInUse
│   ├── SlotInUse
│   ├── ChangedSince                  a revert would undo a later change
│   └── NotRevertible
├── OutOfRange                        a revision outside what can be served (OUT_OF_RANGE)
│   ├── RevisionCompacted             older than the changes kept for replay
│   └── RevisionAhead                 newer than this daemon's, for too long
├── ResourceExhausted                 a limit of the daemon is reached (RESOURCE_EXHAUSTED)
│   ├── TooManyWatchers               every server-stream slot is taken
│   └── TooManyUploads                every client-stream slot is taken
├── StorageUnavailable                the database cannot be reached (UNAVAILABLE)
│   ├── StorageFull                   its disk is full (RESOURCE_EXHAUSTED)
│   └── DatabaseReadOnly              it refuses every write: read-only file or server
└── Draining                          the daemon is shutting down; go elsewhere (UNAVAILABLE)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One malformed field of a request."""

    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    """One fact of the current state that forbids a change."""

    type: str
    subject: str
    description: str


class ModelConfigError(Exception):
    """Base of every condition a client can cause; carries an UPPER_SNAKE reason and metadata.

    `field_violations` name malformed fields (or bad rows of an import) for any condition.
    """

    reason = "MODELCONFIG_ERROR"
    field_violations: tuple[FieldViolation, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}

    def for_rows(self, bad_rows: Sequence[tuple[int, ModelConfigError]]) -> ModelConfigError:
        """This error (the first bad row's) standing for a whole rejected batch of rows."""
        first_line = bad_rows[0][0]
        rejected = copy.copy(self)
        more = f" (and {len(bad_rows) - 1} more bad rows)" if len(bad_rows) > 1 else ""
        rejected.message = f"line {first_line}: {self.message}{more}; nothing was applied"
        rejected.args = (rejected.message,)
        rejected.metadata = {
            **self.metadata,
            "line": str(first_line),
            "bad_rows": str(len(bad_rows)),
        }
        rejected.field_violations = tuple(
            FieldViolation(f"line {line}", f"{error.reason}: {error.message}")
            for line, error in bad_rows
        )
        return rejected


class InvalidArgument(ModelConfigError):
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        reason: str | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.field_violations = tuple(violations)

    @property
    def violations(self) -> tuple[FieldViolation, ...]:
        return self.field_violations

    @classmethod
    def field(
        cls, field: str, description: str, *, reason: str = "INVALID_FIELD", **metadata: object
    ) -> InvalidArgument:
        """One malformed field: the common case."""
        return cls(
            f"{field}: {description}",
            violations=[FieldViolation(field, description)],
            reason=reason,
            metadata={"field": field, **metadata},
        )


class NotFound(ModelConfigError):
    reason = "NOT_FOUND"


class ModelNotFound(NotFound):
    reason = "MODEL_NOT_FOUND"


class SlotNotFound(NotFound):
    reason = "SLOT_NOT_FOUND"


class OverrideNotFound(NotFound):
    reason = "OVERRIDE_NOT_FOUND"


class GlobalSettingNotFound(NotFound):
    reason = "GLOBAL_SETTING_NOT_FOUND"


class ChangeNotFound(NotFound):
    reason = "CHANGE_NOT_FOUND"


class AlreadyExists(ModelConfigError):
    reason = "ALREADY_EXISTS"


class Aborted(ModelConfigError):
    reason = "ABORTED"


class EtagMismatch(Aborted):
    reason = "ETAG_MISMATCH"


class ImportInProgress(Aborted):
    reason = "IMPORT_IN_PROGRESS"


class RevisionMoved(Aborted):
    reason = "REVISION_MOVED"


class Unauthenticated(ModelConfigError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(ModelConfigError):
    reason = "ROLE_INSUFFICIENT"


class FailedPrecondition(ModelConfigError):
    reason = "FAILED_PRECONDITION"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[PreconditionViolation] = (),
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.violations = tuple(violations)


class ProviderMismatch(FailedPrecondition):
    reason = "PROVIDER_MISMATCH"


class ModelTypeMismatch(FailedPrecondition):
    reason = "MODEL_TYPE_MISMATCH"


class ModelInactive(FailedPrecondition):
    reason = "MODEL_INACTIVE"


class ModelInUse(FailedPrecondition):
    reason = "MODEL_IN_USE"


class SuccessorMismatch(FailedPrecondition):
    reason = "SUCCESSOR_MISMATCH"


class SlotNotInConfiguration(FailedPrecondition):
    reason = "SLOT_NOT_IN_CONFIGURATION"


class SlotInUse(FailedPrecondition):
    reason = "SLOT_IN_USE"


class ChangedSince(FailedPrecondition):
    reason = "CHANGED_SINCE"


class NotRevertible(FailedPrecondition):
    reason = "NOT_REVERTIBLE"


class StorageUnavailable(ModelConfigError):
    reason = "STORAGE_UNAVAILABLE"


class StorageFull(StorageUnavailable):
    """Writes are refused until an operator frees space; reads go on from the snapshot."""

    reason = "STORAGE_FULL"


class DatabaseReadOnly(StorageUnavailable):
    """Writes are refused until the database is writable again; reads go on from the snapshot."""

    reason = "DATABASE_READ_ONLY"


class OutOfRange(ModelConfigError):
    reason = "OUT_OF_RANGE"


class RevisionCompacted(OutOfRange):
    reason = "REVISION_COMPACTED"


class RevisionAhead(OutOfRange):
    reason = "REVISION_AHEAD"


class Draining(ModelConfigError):
    reason = "DRAINING"


class ResourceExhausted(ModelConfigError):
    reason = "RESOURCE_EXHAUSTED"


class TooManyWatchers(ResourceExhausted):
    reason = "TOO_MANY_WATCHERS"


class TooManyUploads(ResourceExhausted):
    reason = "TOO_MANY_UPLOADS"


class StreamIdle(Aborted):
    """A client stream waited on for longer than the daemon allows: run the upload again."""

    reason = "STREAM_IDLE"
