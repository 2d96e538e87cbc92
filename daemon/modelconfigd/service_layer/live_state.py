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
from ..domain.state import Accounts, State, utc_today
from .unit_of_work import Store

log = logging.getLogger(__name__)


# Told of every State published and how far it trailed the database (seconds), e.g. for metrics.
PublishListener = Callable[[State, float], None]
# Told when the database goes out of reach (False) and when it is back (True).
StorageListener = Callable[[bool], None]


class LiveState:
    def __init__(self, store: Store, on_publish: PublishListener | None = None) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._listeners: list[PublishListener] = [on_publish] if on_publish else []
        self._storage_listeners: list[StorageListener] = []
        self.storage_up = True  # as the poll last found the database
        with store.read() as unit:
            catalog = unit.catalog()
            accounts = Accounts(unit.accounts(list(catalog.slots)))
            revision = unit.revision
        self._state = State(revision, catalog, accounts)
        self._current_at = time.time()  # when the State was last known to be current
        _settle()
        self._on_publish(self._state, 0.0)

    def add_storage_listener(self, listener: StorageListener) -> None:
        """Tell `listener` whenever the poll finds the database out of reach, or back."""
        self._storage_listeners.append(listener)

    def _storage(self, up: bool) -> None:
        if up != self.storage_up:
            self.storage_up = up
            for listener in self._storage_listeners:
                listener(up)

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
                    today = utc_today()
                    if today != state.today:  # past midnight (UTC): deprecations may start
                        self._state = state = state.on(today)
                    self._on_publish(state, 0.0)
                    return state
                # A gap: the audit trail's retention pruned changes this daemon never applied
                # (it was stopped, or far behind): what they changed is unknown, reload it all.
                gap = changes[0].revision != state.revision + 1
                reseeded = gap or any(c.kind is ChangeKind.SEED for c in changes)
                catalog = state.catalog
                if reseeded or any(c.changes_catalog for c in changes):
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
                    if self.storage_up:
                        log.warning(
                            "the database is out of reach: writes get UNAVAILABLE, reads and "
                            "watches are served from revision %d (%s)",
                            self._state.revision,
                            exc,
                        )
                    self._storage(False)
                    self._on_publish(self._state, time.time() - self._current_at)
                except Exception:
                    log.exception("catching up with the database failed")
                else:
                    if not self.storage_up:
                        log.info("the database is back: writes are served again")
                    self._storage(True)

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
