"""The composition root: database, migrations, store, live snapshot and services, wired once."""

from __future__ import annotations

from dataclasses import dataclass

from ..adapters.database import is_postgres, open_database
from ..adapters.migrations import migrate
from ..adapters.notifications import CommitListener
from ..adapters.store import PeeweeStore
from ..service_layer.change_feed import DEFAULT_KEEP, ChangeFeed, KeepPolicy
from ..service_layer.live_state import LiveState, PublishListener
from ..service_layer.services import ModelConfigServices


@dataclass
class App:
    store: PeeweeStore
    live: LiveState
    services: ModelConfigServices
    feed: ChangeFeed
    listener: CommitListener | None = None

    @classmethod
    def open(
        cls,
        database_url: str,
        *,
        poll_interval: float | None = 0.5,
        migrated: bool = False,
        on_publish: PublishListener | None = None,
        keep: KeepPolicy = DEFAULT_KEEP,
        audit_keep: KeepPolicy | None = None,
    ) -> App:
        """Migrate (and seed) the database unless `migrated` says it was done already, load the
        snapshot, and start polling for changes; `on_publish` hears of every snapshot, the
        change feed replays what `keep` says, and the audit trail keeps what `audit_keep` says
        (None: everything)."""
        db = open_database(database_url)
        if not migrated:
            migrate(db)
        store = PeeweeStore(db)
        live = LiveState(store, on_publish)
        if poll_interval:
            live.start_polling(poll_interval)
        listener = None
        if is_postgres(db) and poll_interval:
            # Other daemons' commits are announced: catch up at once, the poll as safety net.
            listener = CommitListener(database_url, live.catch_up)
            listener.start()
        feed = ChangeFeed(store, live, keep, audit_keep)
        feed.start()
        return cls(store, live, ModelConfigServices(store, live), feed, listener)

    def close(self) -> None:
        self.feed.close()
        if self.listener is not None:
            self.listener.stop()
        self.live.stop()
        self.store.close()
