"""Python client of the modelconfig daemon: `ModelConfigClient`, `LocalResolver` (resolution
in-process, kept current by the change feed), typed errors, generated stubs.

The generated messages and stubs live in `modelconfig.v1`.
"""

from importlib.metadata import PackageNotFoundError, version

from ._client import ModelConfigClient
from ._errors import (
    Aborted,
    AlreadyExists,
    CatalogChanged,
    ChangeNotFound,
    EtagMismatch,
    FailedPrecondition,
    ImportInProgress,
    InvalidArgument,
    ModelConfigError,
    ModelInUse,
    ModelNotFound,
    NotFound,
    NotRevertible,
    OutOfRange,
    OverrideNotFound,
    PermissionDenied,
    ResourceExhausted,
    RevisionMoved,
    SlotRefusesModel,
    StorageFull,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)
from ._local import LocalResolver

try:
    __version__ = version("modelconfig-client")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Aborted",
    "AlreadyExists",
    "CatalogChanged",
    "ChangeNotFound",
    "EtagMismatch",
    "FailedPrecondition",
    "ImportInProgress",
    "InvalidArgument",
    "LocalResolver",
    "ModelConfigClient",
    "ModelConfigError",
    "ModelInUse",
    "ModelNotFound",
    "NotFound",
    "NotRevertible",
    "OutOfRange",
    "OverrideNotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RevisionMoved",
    "SlotRefusesModel",
    "StorageFull",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "from_rpc_error",
]
