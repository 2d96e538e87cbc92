"""Wire bytes derived from one snapshot: whole answers by request bytes, and their pieces.

ResolveForAccount's answer depends only on the request and the State; backend services ask the
same few questions again and again, so a hit answers with no decoding, no look-up and no
encoding, and a miss assembles its answer from pieces (one resolved slot, the tail of a
response) shared by every account that resolves alike. All of it belongs to one State: the
first call that sees a newer State starts over, so no byte can outlive the revision it was
computed from. The domain's State knows nothing of this.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

from ..domain.state import State

T = TypeVar("T")


class SnapshotWire:
    """The answers and pieces computed from one State."""

    __slots__ = ("_pieces", "answers", "state")
    # Pieces are shared by every account that resolves alike, so there are few; the bound only
    # guards against pathological request mixes.
    MAX_PIECES = 100_000

    def __init__(self, state: State) -> None:
        self.state = state
        self.answers: dict[bytes, object] = {}  # request bytes -> what the handler cached
        self._pieces: dict[Hashable, object] = {}

    def piece(self, key: Hashable, build: Callable[[], T]) -> T:
        """The piece for `key`, built once per State."""
        value = self._pieces.get(key)
        if value is None:
            if len(self._pieces) >= self.MAX_PIECES:
                self._pieces = {}
            value = self._pieces.setdefault(key, build())
        return value  # type: ignore[return-value]


class WireCache:
    # At about 600 bytes an answer, the bound keeps the answers near 6 MB; when full they start
    # over, which costs one miss per hot request.
    MAX_ANSWERS = 10_000

    def __init__(self, current_state: Callable[[], State]) -> None:
        self._current_state = current_state
        self._current: SnapshotWire | None = None
        self._lock = threading.Lock()

    def get(self, request: bytes) -> tuple[object | None, SnapshotWire]:
        """The cached answer (or None), and the wire of the current State."""
        wire = self._current
        if wire is None or wire.state is not self._current_state():  # the hot path: rarely
            wire = self.current()
        return wire.answers.get(request), wire

    def current(self) -> SnapshotWire:
        state = self._current_state()
        wire = self._current
        if wire is None or wire.state is not state:
            with self._lock:
                wire = self._current
                if wire is None or wire.state is not state:
                    wire = self._current = SnapshotWire(state)
        return wire

    def of(self, state: State) -> SnapshotWire:
        """The wire for `state`: the shared one if it is current, else one for this call only."""
        wire = self._current
        return wire if wire is not None and wire.state is state else SnapshotWire(state)

    def put(self, request: bytes, answer: object, wire: SnapshotWire) -> None:
        """Remember an answer computed from `wire`'s State (only while it is the current one)."""
        if wire is not self._current or self._current_state() is not wire.state:
            return
        if len(wire.answers) >= self.MAX_ANSWERS:
            wire.answers.clear()
        wire.answers[request] = answer
