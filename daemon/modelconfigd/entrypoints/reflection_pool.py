"""A descriptor pool for server reflection that also finds methods and fields by full name.

protobuf's upb pool answers FindFileContainingSymbol only for top-level symbols, so
`grpcurl describe modelconfig.v1.ModelConfigService.SetModel` would fail with "Symbol not
found"; this wrapper falls back to the method's service (or the field's message).
"""

from __future__ import annotations

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor


class MemberAwarePool:
    def __init__(self, pool: descriptor_pool.DescriptorPool | None = None) -> None:
        self._pool = pool or descriptor_pool.Default()

    def __getattr__(self, name: str):
        return getattr(self._pool, name)

    def FindFileContainingSymbol(self, symbol: str) -> FileDescriptor:
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            parent, _, member = symbol.rpartition(".")
            for find, members in (
                (self._pool.FindServiceByName, "methods_by_name"),
                (self._pool.FindMessageTypeByName, "fields_by_name"),
            ):
                try:
                    container = find(parent)
                except KeyError:
                    continue
                if member in getattr(container, members):
                    return container.file
            raise
