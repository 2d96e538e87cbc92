"""LocalResolver: ResolveForAccount answered in-process, kept current by WatchChanges.

The resolver holds the catalog (models, slots, global settings) always, and accounts' overrides
either all (`accounts="all"`: the watch begins with every override) or on demand
(`accounts="on_demand"`: fetched with ResolveForAccounts when first asked for, kept in a bounded
LRU, updated by the watch). It applies the daemon's merge rule to them, so `resolve()` answers
what the daemon would answer at the same revision, field for field.

A thread follows the watch. When the connection drops, the resolver keeps answering from what
it has and marks itself stale; it reconnects with jittered exponential backoff and resumes from
its revision (reloading everything when the daemon has compacted that far). It reports an
error only after `grace` seconds without the daemon, and gives up only on UNAUTHENTICATED or
PERMISSION_DENIED, which retrying cannot fix.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc

from ._errors import InvalidArgument, ModelConfigError, Unavailable, from_rpc_error
from .v1 import model_config_service_pb2 as api
from .v1 import model_config_service_pb2_grpc as api_grpc
from .v1 import resources_pb2 as pb

log = logging.getLogger(__name__)

# The daemon's rule for account ids (see its validation), so that a malformed id is refused
# here exactly as the daemon would refuse it.
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
_FATAL = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)

# One account's overrides: (the revision that last changed them, slot -> model id).
Record = tuple[int, dict[str, int]]
_NO_OVERRIDES: Record = (0, {})

READY, STALE, ERROR = "ready", "stale", "error"


@dataclass(frozen=True)
class _Catalog:
    models: dict[int, pb.Model]
    slots: dict[str, pb.SlotSetting]  # in slot order
    global_etag: str

    @classmethod
    def of(cls, message: pb.Catalog) -> _Catalog:
        return cls(
            {m.id: m for m in message.models},
            {s.slot: s for s in message.slots},
            message.global_etag,
        )

    def resolve_slot(self, slot: str, override: int | None) -> pb.ResolvedSlot:
        """The daemon's merge rule: an active account override, else the global setting, else
        the slot's default; an override skipped because its model is inactive is named, and a
        model whose deprecation date (UTC) is reached is marked deprecated."""
        setting = self.slots[slot]
        skipped = None
        if override is not None:
            model = self.models.get(override)
            if model is not None and model.is_active:
                return pb.ResolvedSlot(
                    slot=slot, model=model, source=pb.SOURCE_ACCOUNT, deprecated=_deprecated(model)
                )
            skipped = model
        answer = pb.ResolvedSlot(slot=slot)
        if setting.HasField("model") and self.models[setting.model.id].is_active:
            answer.model.CopyFrom(self.models[setting.model.id])
            answer.source = pb.SOURCE_GLOBAL
        else:
            answer.model.CopyFrom(self.models[setting.default_model.id])
            answer.source = pb.SOURCE_DEFAULT
        if skipped is not None:
            answer.skipped_override.CopyFrom(skipped)
        answer.deprecated = _deprecated(answer.model)
        return answer


def _deprecated(model: pb.Model) -> bool:
    # ISO dates order as text; the daemon compares with the same UTC day.
    day = model.deprecation_date
    return bool(day) and day <= datetime.now(UTC).date().isoformat()


class _Accounts:
    """account id -> Record, copied on write: a small dictionary of recent changes over a
    large shared one, folded together once the small one grows (as the daemon keeps them)."""

    MAX_RECENT = 4096

    def __init__(self, base: dict[str, Record], recent: dict[str, Record] | None = None):
        self.base = base
        self.recent = recent or {}

    def get(self, account_id: str) -> Record | None:
        record = self.recent.get(account_id)
        return self.base.get(account_id) if record is None else record

    def __len__(self) -> int:
        return len(self.base) + sum(1 for a in self.recent if a not in self.base)

    def updated(self, changes: dict[str, Record]) -> _Accounts:
        if not changes:
            return self
        recent = {**self.recent, **changes}
        if len(recent) > self.MAX_RECENT:
            return _Accounts({**self.base, **recent})
        return _Accounts(self.base, recent)


@dataclass
class _State:
    """What the resolver answers from: one revision, whole. Replaced, never changed, except
    for `answers`, a cache of the responses given at this revision."""

    revision: int
    catalog: _Catalog
    accounts: _Accounts
    answers: dict[tuple[str, tuple[str, ...]], api.ResolveForAccountResponse] = field(
        default_factory=dict
    )


class _Lru:
    """The on-demand accounts: at most `size`, the least recently resolved evicted first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.records: OrderedDict[str, Record] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, account_id: str) -> Record | None:
        with self.lock:
            record = self.records.get(account_id)
            if record is not None:
                self.records.move_to_end(account_id)
            return record

    def put(self, account_id: str, record: Record) -> None:
        with self.lock:
            self.records[account_id] = record
            self.records.move_to_end(account_id)
            while len(self.records) > self.size:
                self.records.popitem(last=False)

    def update(self, account_id: str, record: Record) -> None:
        """A newer record from the watch, kept only for an account already held."""
        with self.lock:
            held = self.records.get(account_id)
            if held is not None and held[0] < record[0]:
                self.records[account_id] = record

    def forget(self, account_id: str) -> None:
        with self.lock:
            self.records.pop(account_id, None)

    def clear(self) -> None:
        with self.lock:
            self.records.clear()


class LocalResolver:
    """Resolves accounts in-process; see the module's docstring.

    >>> resolver = LocalResolver("127.0.0.1:50051", token="...")
    >>> resolver.resolve("acme").slots[0].model.model_name
    'gpt-4o-mini'
    >>> resolver.close()

    Responses are shared between calls: read them, do not modify them (copy one first).
    """

    MAX_ANSWERS = 100_000

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        token: str | None = None,
        slots: Sequence[str] | None = None,
        accounts: str = "all",
        max_accounts: int = 100_000,
        channel: grpc.Channel | None = None,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        start_timeout: float = 30.0,
        backoff_start: float = 0.1,
        backoff_cap: float = 5.0,
        grace: float = 15.0,
        on_change: Callable[[int, set[str]], None] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        if accounts not in ("all", "on_demand"):
            raise ValueError(f"accounts must be 'all' or 'on_demand', not {accounts!r}")
        if grace <= backoff_cap:
            raise ValueError("grace must be longer than backoff_cap: one retry always fits")
        self._owns_channel = channel is None
        if channel is None:
            # The channel's own reconnection backoff (up to 2 minutes by default) would keep a
            # restarted daemon out of reach long after this resolver retries: bound it alike.
            options = [
                ("grpc.initial_reconnect_backoff_ms", max(1, int(backoff_start * 1000))),
                ("grpc.min_reconnect_backoff_ms", max(1, int(backoff_start * 1000))),
                ("grpc.max_reconnect_backoff_ms", max(1, int(backoff_cap * 1000))),
            ]
            if root_certificates or certificate_chain:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates, private_key, certificate_chain
                )
                channel = grpc.secure_channel(target, credentials, options)
            else:
                channel = grpc.insecure_channel(target, options)
        self._channel = channel
        self._stub = api_grpc.ModelConfigServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        # The slots held (None: all): others' overrides are not kept (only the account's
        # revision, which is its etag), and resolve() answers only these.
        self._held: frozenset[str] | None = frozenset(slots) if slots else None
        self._all_accounts = accounts == "all"
        self._lru = _Lru(max_accounts)
        self._backoff = (backoff_start, backoff_cap)
        self._grace = grace
        self._on_change = on_change or (lambda revision, slots: None)
        self._on_status = on_status or (lambda status: None)
        self._state: _State | None = None
        self._moved = threading.Condition()
        self._closing = threading.Event()
        self._call: grpc.Future | None = None  # the watch in progress (a call: cancellable)
        self._fatal: ModelConfigError | None = None
        self._resync = False  # the next watch starts from now (after REVISION_COMPACTED)
        self._shared: dict[tuple[tuple[str, int], ...], dict[str, int]] = {}
        self._status = STALE
        self._current_at = 0.0  # time.monotonic() when last known current
        self._day = datetime.now(UTC).date()  # the UTC day cached answers were made on
        self._thread = threading.Thread(target=self._follow, name="modelconfig-resolver")
        self._thread.daemon = True
        self._thread.start()
        with self._moved:
            self._moved.wait_for(
                lambda: self._state is not None or self._fatal is not None, start_timeout
            )
        if self._state is None:
            self.close()
            if self._fatal is not None:
                raise self._fatal
            raise TimeoutError(f"no state from {target} within {start_timeout:g} s")

    # -- what callers use ----------------------------------------------------------------------

    def resolve(self, account_id: str, slots: Sequence[str] = ()) -> api.ResolveForAccountResponse:
        """What ResolveForAccount answers at this resolver's revision (shared: do not modify)."""
        state = self._state
        assert state is not None
        key = (account_id, slots if type(slots) is tuple else tuple(slots))
        answer = state.answers.get(key)
        if answer is not None:  # the hot path: one dictionary look-up
            return answer
        return self._resolve(state, key)

    def resolve_global(self, slot: str) -> pb.ResolvedSlot:
        """The slot as an account without overrides of it resolves it: the global setting, or
        the slot's default (UNKNOWN_SLOT for a slot that does not exist)."""
        state = self._state
        assert state is not None
        if slot not in state.catalog.slots:
            raise _invalid(
                "slot",
                f"unknown slot {slot!r}; known slots: {', '.join(state.catalog.slots)}",
                "UNKNOWN_SLOT",
                {"slot": slot},
            )
        return state.catalog.resolve_slot(slot, None)

    @property
    def revision(self) -> int:
        state = self._state
        return state.revision if state is not None else 0

    @property
    def staleness(self) -> float:
        """Seconds since the resolver last knew it was current (0 while it follows)."""
        if self._status == READY:
            return 0.0
        return time.monotonic() - self._current_at

    @property
    def status(self) -> str:
        """`ready`, `stale` (disconnected, within the grace period) or `error`."""
        return self._status

    @property
    def slots(self) -> tuple[str, ...]:
        """The slots this resolver answers, in the daemon's order."""
        state = self._state
        if state is None:
            return ()
        return tuple(s for s in state.catalog.slots if self._holds(s))

    @property
    def accounts_held(self) -> int:
        state = self._state
        if not self._all_accounts:
            return len(self._lru.records)
        return len(state.accounts) if state is not None else 0

    def wait_for_revision(self, revision: int, timeout: float | None = None) -> bool:
        """Wait until the resolver has applied `revision` (e.g. a write's, to read it back)."""
        with self._moved:
            return self._moved.wait_for(lambda: self.revision >= revision, timeout)

    def close(self) -> None:
        """Stop following the daemon; joins the resolver's thread."""
        self._closing.set()
        call = self._call
        if call is not None:
            call.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> LocalResolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolution ----------------------------------------------------------------------------

    def _resolve(
        self, state: _State, key: tuple[str, tuple[str, ...]]
    ) -> api.ResolveForAccountResponse:
        if self._fatal is not None:
            raise self._fatal
        account_id, requested = key
        if not account_id:
            raise _invalid("account_id", "is required", "ACCOUNT_ID_REQUIRED", {})
        if not _ACCOUNT_ID.fullmatch(account_id):
            raise _invalid(
                "account_id",
                f"{account_id!r} is not a valid account id (1-128 characters: letters, digits, "
                "._:@/-)",
                "INVALID_ACCOUNT_ID",
                {"account_id": account_id},
            )
        known = state.catalog.slots
        for index, slot in enumerate(requested):
            if slot not in known:
                raise _invalid(
                    f"slots[{index}]",
                    f"unknown slot {slot!r}; known slots: {', '.join(known)}",
                    "UNKNOWN_SLOT",
                    {"slot": slot},
                )
        held = self._held
        if held is not None:
            for index, slot in enumerate(requested):
                if slot not in held:
                    raise _invalid(
                        f"slots[{index}]",
                        f"slot {slot!r} is not one this resolver holds ({', '.join(sorted(held))})",
                        "SLOT_NOT_HELD",
                        {"slot": slot},
                    )
        if requested:
            names = tuple(dict.fromkeys(requested))
        else:
            names = tuple(known) if held is None else tuple(s for s in known if s in held)
        if self._all_accounts:
            record = state.accounts.get(account_id) or _NO_OVERRIDES
        else:
            cached = self._lru.get(account_id)
            if cached is None:
                read_at = self._fetch(account_id, state.revision)
                if read_at > state.revision:
                    # Read past this resolver's revision: answer once the watch is there too,
                    # so the answer is the daemon's at one revision.
                    self.wait_for_revision(read_at, timeout=5.0)
                    return self.resolve(account_id, requested)
                cached = self._lru.get(account_id)
            record = cached or _NO_OVERRIDES
        revision, overrides = record
        answer = api.ResolveForAccountResponse(
            account_id=account_id,
            slots=[state.catalog.resolve_slot(s, overrides.get(s)) for s in names],
            revision=state.revision,
            etag=f"a{revision}",
        )
        if len(state.answers) >= self.MAX_ANSWERS:
            state.answers.clear()
        state.answers[key] = answer
        return answer

    def _fetch(self, account_id: str, revision: int) -> int:
        """Read an account's overrides from the daemon into the cache; returns the revision
        read at. It must not be older than this resolver's: the watch may have passed a change
        of the account on while it was not cached yet."""
        for _ in range(50):
            try:
                batch = self._stub.ResolveForAccounts(
                    api.ResolveForAccountsRequest(account_ids=[account_id]),
                    metadata=self._metadata,
                    timeout=5,
                )
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None
            if batch.revision >= revision:
                result = batch.results[0]
                overrides = {}
                for resolved in result.slots:
                    if not self._holds(resolved.slot):
                        continue
                    if resolved.source == pb.SOURCE_ACCOUNT:
                        overrides[resolved.slot] = resolved.model.id
                    elif resolved.HasField("skipped_override"):
                        overrides[resolved.slot] = resolved.skipped_override.id
                self._lru.put(account_id, (int(result.etag[1:]), self._intern(overrides)))
                if self.revision <= batch.revision:
                    return batch.revision
                # The watch moved on meanwhile and may have skipped this account: read again.
                self._lru.forget(account_id)
            revision = max(revision, self.revision)
            time.sleep(0.005)  # a replica behind this resolver: let it catch up
        raise Unavailable(
            f"could not read account {account_id!r} at this resolver's revision {revision}",
            code=grpc.StatusCode.UNAVAILABLE,
        )

    def _holds(self, slot: str) -> bool:
        return self._held is None or slot in self._held

    def _intern(self, overrides: dict[str, int]) -> dict[str, int]:
        """One shared (never modified) dictionary per distinct set of overrides: a million
        accounts hold a handful of them."""
        key = tuple(sorted(overrides.items()))
        shared = self._shared.get(key)
        if shared is None:
            shared = self._shared[key] = overrides
        return shared

    # -- following the daemon ------------------------------------------------------------------

    def _follow(self) -> None:
        delay = self._backoff[0]
        lost_at: float | None = None
        while not self._closing.is_set():
            try:
                for _ in self._watch():
                    delay, lost_at = self._backoff[0], None
            except _Behind as behind:
                log.warning("%s: trying again", behind)
                if self._call is not None:
                    self._call.cancel()
            except grpc.RpcError as error:
                if self._closing.is_set():
                    break
                failure = from_rpc_error(error)
                if error.code() in _FATAL:
                    self._fail(failure)
                    return
                if failure.reason == "REVISION_COMPACTED":
                    log.warning("revision %d was compacted: reloading everything", self.revision)
                    self._resync = True
                    continue
                log.warning("lost the watch (%s); retrying in about %.2f s", failure, delay)
            if self._closing.is_set():
                break
            now = time.monotonic()
            lost_at = lost_at or now
            self._set_status(ERROR if now - lost_at > self._grace else STALE)
            self._closing.wait(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._backoff[1])
        self._set_status(STALE)

    def _watch(self) -> Iterator[None]:
        """Follow one WatchChanges stream, applying each whole revision; yields after each."""
        state = self._state
        fresh = state is None or self._resync
        start = 0 if fresh or state is None else state.revision
        request = api.WatchChangesRequest(
            start_revision=start, all_overrides=fresh and self._all_accounts
        )
        call = self._stub.WatchChanges(request, metadata=self._metadata)
        self._call = call  # type: ignore[assignment]  # a CallIterator is a Future too
        pending: list[api.WatchChangesResponse] = []
        for response in call:
            pending.append(response)
            if response.more:
                continue
            if fresh:
                self._start(pending)
                fresh = self._resync = False
            else:
                self._apply(pending)
            pending = []
            self._current_at = time.monotonic()
            self._forget_answers_of_another_day()
            self._set_status(READY)
            yield

    def _forget_answers_of_another_day(self) -> None:
        """Answers are cached per revision, but `deprecated` also depends on the UTC day: past
        midnight, answer anew (the heartbeat every 5 s brings this here soon after)."""
        today = datetime.now(UTC).date()
        if today != self._day:
            self._day = today
            state = self._state
            if state is not None:
                state.answers.clear()

    def _start(self, parts: list[api.WatchChangesResponse]) -> None:
        """The first state of a watch from now: the catalog, and with all accounts every
        override (an entry without a slot only carries an account's revision)."""
        base: dict[str, Record] = {}
        for part in parts:
            for override in part.overrides:
                revision, overrides = base.get(override.account_id, _NO_OVERRIDES)
                if override.slot and self._holds(override.slot):
                    overrides = self._intern({**overrides, override.slot: override.model_id})
                base[override.account_id] = (max(revision, override.revision), overrides)
        last = parts[-1]
        current = self._state
        if current is not None and last.revision < current.revision:
            # A replica behind this resolver (after a reload): never go backwards; try again.
            raise _Behind(f"revision {last.revision} is behind this resolver's {current.revision}")
        self._lru.clear()  # on demand: held accounts may have missed changes; fetch again
        self._publish(_State(last.revision, _Catalog.of(last.catalog), _Accounts(base)))
        self._on_change(last.revision, set(self.slots))

    def _apply(self, parts: list[api.WatchChangesResponse]) -> None:
        """Changes on top of the current state: overrides changed, and the catalog as of the
        last part when they touched it."""
        state = self._state
        assert state is not None
        last = parts[-1]
        catalog = _Catalog.of(last.catalog) if last.HasField("catalog") else state.catalog
        changed: dict[str, Record] = {}
        touched: set[str] = set()
        for part in parts:
            for change in part.changes:
                if change.kind == pb.CHANGE_KIND_SETTING and change.scope == pb.SCOPE_ACCOUNT:
                    model_id = change.after.model_id or None
                    self._set(state, changed, change, change.account_id, change.slot, model_id)
                    touched.add(change.slot)
                elif change.kind in _ONE_SLOT:
                    touched.add(change.slot)
                elif change.kind != pb.CHANGE_KIND_IMPORT:
                    touched.update(catalog.slots)  # a model: any slot may resolve differently
            for override in part.overrides:
                model_id = override.model_id or None
                self._set(state, changed, override, override.account_id, override.slot, model_id)
                touched.add(override.slot)
        if self._all_accounts:
            accounts = state.accounts.updated(changed)
        else:
            accounts = state.accounts
            for account_id, record in changed.items():
                self._lru.update(account_id, record)
        self._publish(_State(last.revision, catalog, accounts))
        touched &= set(catalog.slots) if self._held is None else self._held & set(catalog.slots)
        if touched:
            self._on_change(last.revision, touched)

    def _set(
        self,
        state: _State,
        changed: dict[str, Record],
        source: pb.Change | pb.OverrideChange,
        account_id: str,
        slot: str,
        model_id: int | None,
    ) -> None:
        """Record one override change of an account held (all of them, or those cached)."""
        held = changed.get(account_id)
        if held is None:
            if self._all_accounts:
                held = state.accounts.get(account_id) or _NO_OVERRIDES
            else:
                held = self._lru.records.get(account_id)
                if held is None:
                    return  # not cached: fetched, whole, when first asked for
        if held[0] > source.revision:
            return  # a fetch on demand already read past this change
        overrides = dict(held[1])
        if not self._holds(slot):
            pass  # not kept; the account's revision (its etag) moves all the same
        elif model_id is None:
            overrides.pop(slot, None)
        else:
            overrides[slot] = model_id
        changed[account_id] = (source.revision, self._intern(overrides))

    def _publish(self, state: _State) -> None:
        with self._moved:
            self._state = state
            self._moved.notify_all()

    def _set_status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self._on_status(status)

    def _fail(self, failure: ModelConfigError) -> None:
        log.error("the daemon refused the resolver: %s", failure)
        with self._moved:
            self._fatal = failure
            self._moved.notify_all()
        self._set_status(ERROR)


class _Behind(Exception):
    """A fresh watch began at a revision older than the resolver's."""


_ONE_SLOT = (pb.CHANGE_KIND_SETTING, pb.CHANGE_KIND_SLOT_CREATED, pb.CHANGE_KIND_SLOT_UPDATED)


def _invalid(field_name: str, message: str, reason: str, metadata: dict[str, str]):
    return InvalidArgument(
        f"{field_name}: {message}",
        code=grpc.StatusCode.INVALID_ARGUMENT,
        reason=reason,
        metadata={"field": field_name, **metadata},
    )
