"""Answers to pure reads, keyed by the raw request bytes, valid for one snapshot.

ResolveForAccount's answer depends only on the request and the State; backend services ask the
same few questions again and again, so a hit answers with no decoding, no look-up and no
encoding. The cache belongs to one State: the first call that sees a newer State empties it,
so an answer can never outlive the revision it was computed from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..domain.state import State


class ResponseCache:
    # At about 600 bytes an answer, the bound keeps the cache near 6 MB; when full it starts
    # over, which costs one miss per hot request.
    MAX_ENTRIES = 10_000

    def __init__(self, current_state: Callable[[], State]) -> None:
        self._current_state = current_state
        self._state: State | None = None
        self._answers: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    def get(self, request: bytes) -> tuple[bytes | None, State]:
        """The cached answer (or None) and the State it is (or will be) valid for."""
        state = self._current_state()
        if state is not self._state:
            with self._lock:
                if state is not self._state:
                    self._answers = {}
                    self._state = state
        return self._answers.get(request), state

    def put(self, request: bytes, answer: bytes, state: State) -> None:
        """Remember an answer computed while `state` was current (only if it still is)."""
        with self._lock:
            if state is not self._state or self._current_state() is not state:
                return
            if len(self._answers) >= self.MAX_ENTRIES:
                self._answers = {}
            self._answers[request] = answer
