"""Python client of the modelconfig daemon: `ModelConfigClient`, typed errors, generated stubs.

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
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)

__all__ = [
    "AlreadyExists",
    "EtagMismatch",
    "FailedPrecondition",
    "InvalidArgument",
    "ModelConfigClient",
    "ModelConfigError",
    "NotFound",
    "PermissionDenied",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
]
