"""The change feed: every committed change in revision order, replayed from a revision and then
followed as it commits (WatchChanges).

A watcher reads what it has not seen from the database, in parts of bounded size, up to the
revision of the live snapshot: that snapshot's catalog is then exactly the catalog at the end of
what was sent. The live snapshot tells the watchers when it moves, so a write reaches them as
soon as this daemon has published it. How far back a watcher may start is the replay window,
set by a keep policy (a number of revisions or a duration) and moved at least every 10 seconds.
The rows are the audit trail too: they stay unless the audit trail has a retention of its own
(MODELCONFIG_AUDIT_KEEP), which prunes them on the same beat and narrows the window with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from ..domain.changes import Change
from ..domain.errors import (
    Draining,
    InvalidArgument,
    RevisionAhead,
    RevisionCompacted,
    StorageUnavailable,
)
from ..domain.model import Model
from ..domain.state import State
from .live_state import LiveState
from .unit_of_work import ReadUnit, Store
from .views import GlobalSettings, global_settings_of

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class KeepPolicy:
    """Which changes a watcher may replay: the latest `revisions`, or those committed within
    the last `seconds` (exactly one of the two is set)."""

    revisions: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.revisions} revisions" if self.revisions else f"{self.seconds:g} seconds"


DEFAULT_KEEP = KeepPolicy(revisions=100_000)


@dataclass(frozen=True)
class OverrideUpdate:
    """One override an import wrote: the model now selected, or None when cleared."""

    revision: int
    account_id: str
    slot: str
    model_id: int | None


@dataclass(frozen=True)
class FeedCatalog:
    """Everything resolution needs besides the accounts' overrides, at one revision."""

    models: list[Model]
    settings: GlobalSettings


@dataclass(frozen=True)
class FeedPart:
    """One response of the feed. The state is whole at `revision` once a part with `more`
    False has been applied; a part without changes or overrides is a heartbeat."""

    changes: list[Change]
    overrides: list[OverrideUpdate]
    revision: int
    more: bool = False
    catalog: FeedCatalog | None = None


class ChangeFeed:
    HEARTBEAT_SECONDS = 5.0
    # How long a watcher asking for a revision this daemon has not reached yet waits for it
    # (a replica trails by its poll interval at most while the database is up).
    AHEAD_WAIT_SECONDS = 5.0
    PART_CHANGES = 1_000
    PART_OVERRIDES = 10_000
    WINDOW_INTERVAL_SECONDS = 10.0
    READ_ATTEMPTS = 3

    def __init__(
        self,
        store: Store,
        live: LiveState,
        keep: KeepPolicy = DEFAULT_KEEP,
        audit_keep: KeepPolicy | None = None,
    ) -> None:
        self._store = store
        self._live = live
        self._keep = keep
        self._audit_keep = audit_keep  # None: the audit trail keeps every change
        self._moved = threading.Condition()
        self._closed = False
        self._oldest = 0  # the oldest start_revision a watcher may replay from
        self._pruned_upto = 0  # the audit trail's changes up to here are deleted
        self._stop = threading.Event()
        self._window_thread: threading.Thread | None = None
        live.add_listener(self._published)
        self.move_window()

    # -- the replay window ---------------------------------------------------------------------

    @property
    def oldest_revision(self) -> int:
        """The oldest start_revision that can still be replayed from."""
        return self._oldest

    def move_window(self) -> int:
        """Apply the keep policies: prune the audit trail past its own retention, if it has
        one; the replay window (never wider than what is left) now starts at the returned
        revision."""
        current = self._live.current.revision
        oldest = self._kept_after(self._keep, current)
        if self._audit_keep is not None:
            pruned_upto = self._kept_after(self._audit_keep, current)
            if pruned_upto > self._pruned_upto:
                pruned = self._store.prune_changes(pruned_upto)
                self._pruned_upto = pruned_upto
                if pruned:
                    log.info(
                        "pruned %d recorded changes up to revision %d (the audit trail keeps %s)",
                        pruned,
                        pruned_upto,
                        self._audit_keep,
                    )
            oldest = max(oldest, pruned_upto)
        # Never backwards: a watcher told it was compacted must not be accepted later.
        self._oldest = max(self._oldest, oldest, 0)
        return self._oldest

    def _kept_after(self, policy: KeepPolicy, current: int) -> int:
        """The revision after which `policy` keeps every change."""
        if policy.revisions:
            return max(0, current - policy.revisions)
        since = datetime.now(UTC) - timedelta(seconds=policy.seconds)
        first = self._read(lambda unit: unit.changes.first_at(since))
        return current if first is None else first - 1

    def start(self) -> None:
        """Move the replay window every 10 seconds, in a daemon thread."""

        def keep_moving() -> None:
            while not self._stop.wait(self.WINDOW_INTERVAL_SECONDS):
                try:
                    self.move_window()
                except StorageUnavailable:  # the poll reports outages; the window stays put
                    pass
                except Exception:
                    log.exception("moving the change feed's replay window failed")

        self._window_thread = threading.Thread(
            target=keep_moving, name="modelconfig-feed-window", daemon=True
        )
        self._window_thread.start()

    # -- watchers ------------------------------------------------------------------------------

    def close(self) -> None:
        """End every watch with Draining (the daemon is shutting down)."""
        self._stop.set()
        with self._moved:
            self._closed = True
            self._moved.notify_all()
        if self._window_thread is not None:
            self._window_thread.join(timeout=5)

    def wake(self) -> None:
        """Make every watcher look again (e.g. one whose caller has gone away)."""
        with self._moved:
            self._moved.notify_all()

    def _published(self, state: State, lag: float) -> None:
        with self._moved:
            self._moved.notify_all()

    def watch(
        self, start_revision: int, active: Callable[[], bool], all_overrides: bool = False
    ) -> Iterator[FeedPart]:
        """The parts of the feed from `start_revision` (0: from now, after every account's
        overrides if `all_overrides`) while `active()` holds."""
        if start_revision < 0:
            raise InvalidArgument.field(
                "start_revision",
                f"must be 0 (from now) or a revision, not {start_revision}",
                start_revision=start_revision,
            )
        if all_overrides and start_revision:
            raise InvalidArgument.field(
                "all_overrides",
                "all overrides are sent only to a watch from now (start_revision 0)",
                start_revision=start_revision,
            )
        state = self._live.current
        if start_revision > state.revision:
            state = self._wait_for(start_revision)
        if start_revision and start_revision < self._oldest:
            raise RevisionCompacted(
                f"revision {start_revision} is older than the changes kept for replay "
                f"(from {self._oldest}, keeping {self._keep}): read everything again and watch "
                "from the revision read",
                metadata={"start_revision": start_revision, "oldest_revision": self._oldest},
            )
        position = start_revision or state.revision
        first = True
        if all_overrides:
            yield from self._all_overrides(state)
            first, sent_at = False, time.monotonic()
        while active():
            if self._closed:
                raise Draining(
                    "the daemon is shutting down: watch again, from the last revision "
                    "applied, on this daemon or another"
                )
            state = self._live.current
            if first or state.revision > position:
                yield from self._parts(position, state, with_catalog=first)
                position, first = state.revision, False
                sent_at = time.monotonic()
                continue
            wait = sent_at + self.HEARTBEAT_SECONDS - time.monotonic()
            if wait <= 0:
                yield FeedPart([], [], position)
                sent_at = time.monotonic()
                continue
            with self._moved:
                if not self._closed and self._live.current.revision == position:
                    self._moved.wait(wait)

    def _wait_for(self, revision: int) -> State:
        deadline = time.monotonic() + self.AHEAD_WAIT_SECONDS
        with self._moved:
            while True:
                state = self._live.current
                if state.revision >= revision:
                    return state
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise RevisionAhead(
                        f"revision {revision} is ahead of this daemon's ({state.revision}), "
                        f"which did not reach it within {self.AHEAD_WAIT_SECONDS:g} s",
                        metadata={"start_revision": revision, "revision": state.revision},
                    )
                self._moved.wait(left)

    def _all_overrides(self, state: State) -> Iterator[FeedPart]:
        """Every account's overrides in `state`, in parts; the last carries the catalog. An
        account whose overrides were all cleared is one entry without a slot (its revision
        is its etag)."""
        slots = state.all_slots
        batch: list[OverrideUpdate] = []
        for account_id, record in state.accounts.items():
            revision = record[0] or 0
            found = False
            # Records loaded before a slot was created are shorter: no override of it.
            for slot, model_id in zip(slots, record[1:], strict=False):
                if model_id is not None:
                    batch.append(OverrideUpdate(revision, account_id, slot, model_id))
                    found = True
            if not found:
                batch.append(OverrideUpdate(revision, account_id, "", None))
            if len(batch) >= self.PART_OVERRIDES:
                yield FeedPart([], batch, state.revision, more=True)
                batch = []
        yield FeedPart([], batch, state.revision, catalog=catalog_of(state))

    def _parts(self, after: int, state: State, *, with_catalog: bool) -> Iterator[FeedPart]:
        """Every change after `after` up to `state`'s revision, in parts; the last carries the
        catalog when asked to or when a change touched it."""
        upto = state.revision
        pending: tuple[list[Change], list[OverrideUpdate]] | None = None
        for changes, overrides in self._pieces(after, upto):
            with_catalog = with_catalog or any(c.changes_catalog for c in changes)
            if pending is not None:
                yield FeedPart(*pending, upto, more=True)
            pending = (changes, overrides)
        catalog = catalog_of(state) if with_catalog else None
        yield FeedPart(*(pending or ([], [])), upto, catalog=catalog)

    def _pieces(self, after: int, upto: int) -> Iterator[tuple[list[Change], list[OverrideUpdate]]]:
        """The changes after `after` up to `upto` in pieces of bounded size: runs of changes,
        and each import alone with its overrides (the first piece of an import holds its
        change). Each database read is a short transaction of its own."""
        position = after
        while position < upto:
            changes = self._read(
                lambda unit, after=position: unit.changes.between(after, upto, self.PART_CHANGES)
            )
            if not changes:
                return
            run: list[Change] = []
            for change in changes:
                if not change.writes_overrides:
                    run.append(change)
                    continue
                if run:
                    yield run, []
                    run = []
                yield from self._import_pieces(change)
            if run:
                yield run, []
            position = changes[-1].revision

    def _import_pieces(self, change: Change) -> Iterator[tuple[list[Change], list[OverrideUpdate]]]:
        last: tuple[str, str] | None = None
        first = True
        while True:
            rows = self._read(
                lambda unit, after=last: unit.overrides.history_page(
                    change.revision, after, self.PART_OVERRIDES
                )
            )
            updates = [
                OverrideUpdate(change.revision, row.account_id, row.slot, row.after) for row in rows
            ]
            if updates or first:
                yield ([change] if first else []), updates
            first = False
            if len(rows) < self.PART_OVERRIDES:
                return
            last = (rows[-1].account_id, rows[-1].slot)


    def _read(self, query: Callable[[ReadUnit], T]) -> T:
        """`query` in a read unit of its own, tried again on a connection the database
        dropped (the first statement on it fails; the next attempt reconnects): a watcher
        outlives an outage it was idle through."""
        for attempt in range(self.READ_ATTEMPTS):
            try:
                with self._store.read() as unit:
                    return query(unit)
            except StorageUnavailable:
                if attempt + 1 == self.READ_ATTEMPTS:
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")


def catalog_of(state: State) -> FeedCatalog:
    models = [state.catalog.models[i] for i in sorted(state.catalog.models)]
    return FeedCatalog(models, global_settings_of(state))
