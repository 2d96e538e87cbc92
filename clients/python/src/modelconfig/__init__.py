"""Python client of the modelconfig daemon: `ModelConfigClient`, `LocalResolver` (resolution
in-process, kept current by the change feed), typed errors, generated stubs.

The generated messages and stubs live in `modelconfig.v1`.
"""

from ._client import ModelConfigClient
from ._errors import (
    AlreadyExists,
    EtagMismatch,
    FailedPrecondition,
    InvalidArgument,
    ModelConfigError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)
from ._local import LocalResolver

__all__ = [
    "AlreadyExists",
    "EtagMismatch",
    "FailedPrecondition",
    "InvalidArgument",
    "LocalResolver",
    "ModelConfigClient",
    "ModelConfigError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
]
