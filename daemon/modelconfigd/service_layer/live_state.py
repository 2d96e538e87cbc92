"""The live snapshot: the in-memory State that every read is served from, kept up to date.

A write commits to the database, then calls `catch_up()`, so its own result is visible before it
is acknowledged. A poller catches up with writes made by other daemons on the same database. Both
paths apply the change log in revision order, reloading only what the changes touched, and
publish the new State with one reference assignment: readers see one committed revision, whole.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

from ..domain.changes import ChangeKind
from ..domain.errors import StorageUnavailable
from ..domain.state import Accounts, State
from .unit_of_work import Store

log = logging.getLogger(__name__)


# Told of every State published and how far it trailed the database (seconds), e.g. for metrics.
PublishListener = Callable[[State, float], None]


class LiveState:
    def __init__(self, store: Store, on_publish: PublishListener | None = None) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._listeners: list[PublishListener] = [on_publish] if on_publish else []
        with store.read() as unit:
            catalog = unit.catalog()
            accounts = Accounts(unit.accounts(list(catalog.slots)))
            revision = unit.revision
        self._state = State(revision, catalog, accounts)
        self._current_at = time.time()  # when the State was last known to be current
        _settle()
        self._on_publish(self._state, 0.0)

    def add_listener(self, listener: PublishListener) -> None:
        """Tell `listener` of every State published from now on."""
        self._listeners.append(listener)

    def _on_publish(self, state: State, lag: float) -> None:
        for listener in self._listeners:
            listener(state, lag)

    @property
    def current(self) -> State:
        return self._state

    def catch_up(self) -> State:
        """Apply every change committed since the current revision; returns the new State."""
        with self._lock:
            state = self._state
            with self._store.read() as unit:
                changes = unit.changes.since(state.revision)
                self._current_at = now = time.time()
                if not changes:
                    self._on_publish(state, 0.0)
                    return state
                reseeded = any(c.kind is ChangeKind.SEED for c in changes)
                catalog = state.catalog
                if any(c.changes_catalog for c in changes):
                    catalog = unit.catalog()
                slots = list(catalog.slots)
                accounts = state.accounts
                if reseeded:
                    accounts = Accounts(unit.accounts(slots))
                elif any(c.changes_accounts for c in changes):
                    accounts = accounts.updated(unit.accounts(slots, changed_after=state.revision))
            self._state = State(changes[-1].revision, catalog, accounts)
        oldest = changes[0].time
        self._on_publish(self._state, max(0.0, now - oldest.timestamp()) if oldest else 0.0)
        if reseeded or any(c.kind is ChangeKind.IMPORT for c in changes):
            _settle()
        return self._state

    def start_polling(self, interval: float) -> None:
        """Catch up with other daemons' writes every `interval` seconds, in a daemon thread."""

        def poll() -> None:
            while not self._stop.wait(interval):
                try:
                    self.catch_up()
                except StorageUnavailable as exc:
                    log.warning("cannot catch up with the database: %s", exc)
                    self._on_publish(self._state, time.time() - self._current_at)
                except Exception:
                    log.exception("catching up with the database failed")

        self._poller = threading.Thread(target=poll, name="modelconfig-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)


def _settle() -> None:
    """Take a freshly loaded snapshot out of the garbage collector's sight.

    A million accounts are a few million objects; every full collection would walk them all and
    stall the serving threads. They hold no reference cycles (tuples, strings, integers in
    dictionaries), so freezing them loses nothing, and each is still freed by reference
    counting when a later snapshot drops it. Done after loads, not after every write, so the
    short-lived cycles a write leaves behind are still collected.
    """
    gc.collect()
    gc.freeze()
