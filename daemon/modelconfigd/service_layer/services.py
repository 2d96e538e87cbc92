"""The use cases: reads from the live snapshot, writes as one transaction each with a revision.

Checks run in the order clients rely on: a malformed request (InvalidArgument) before any
database work, then a stale etag (EtagMismatch), then the state (NotFound, FailedPrecondition).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..adapters.store import ACCOUNT, CATALOG, GLOBAL, IMPORT, Store, WriteUnit
from ..domain import rules, validation
from ..domain.errors import (
    Aborted,
    AlreadyExists,
    EtagMismatch,
    ImportInProgress,
    InvalidArgument,
    ModelConfigError,
    ModelNotFound,
    OverrideNotFound,
)
from ..domain.model import Model, ModelType, Slot
from ..domain.state import (
    Catalog,
    Resolved,
    ResolvedView,
    State,
    account_etag,
    global_etag,
)
from . import pagination
from .live_state import LiveState

log = logging.getLogger(__name__)

USAGE_SAMPLE = 100
MAX_BATCH = 1000


@dataclass(frozen=True)
class ModelRef:
    """A model named by id or by name/alias: exactly one of the two is set."""

    model_id: int | None = None
    model_name: str | None = None

    def validated(self, id_field: str = "model_id", name_field: str = "model_name") -> ModelRef:
        if self.model_id is not None:
            validation.model_id(self.model_id, id_field)
        elif self.model_name is not None:
            validation.model_name(self.model_name, name_field)
        else:
            raise InvalidArgument.field(
                "model_ref", f"set {id_field} or {name_field}", reason="MODEL_REF_REQUIRED"
            )
        return self

    def __str__(self) -> str:
        if self.model_id is not None:
            return f"id {self.model_id}"
        return f"name or alias {self.model_name!r}"


@dataclass(frozen=True)
class ModelPage:
    models: list[Model]
    next_page_token: str
    revision: int


@dataclass(frozen=True)
class SlotView:
    """A slot with the model one scope selects (None: none) and its default."""

    slot: Slot
    model: Model | None
    default_model: Model


@dataclass(frozen=True)
class GlobalSettings:
    slots: list[SlotView]
    etag: str
    revision: int


class Resolution(NamedTuple):
    """One account resolved in `state`; the view is shared by accounts that resolve alike.

    A NamedTuple: it is built on every ResolveForAccount call.
    """

    account_id: str
    view: ResolvedView
    state: State

    @property
    def slots(self) -> tuple[Resolved, ...]:
        return self.view.slots

    @property
    def etag(self) -> str:
        return self.view.etag

    @property
    def revision(self) -> int:
        return self.state.revision


@dataclass(frozen=True)
class BatchResolution:
    """Per requested account, in order: its view, or why it could not be resolved."""

    results: list[tuple[str, ResolvedView | ModelConfigError]]
    state: State


@dataclass(frozen=True)
class ImportRow:
    """One override to import; `line` names it in errors."""

    line: int
    account_id: str
    slot: str
    ref: ModelRef


@dataclass(frozen=True)
class ImportResult:
    rows: int
    accounts: int
    revision: int


@dataclass(frozen=True)
class SetResult:
    setting: SlotView
    revision: int
    etag: str


class ModelConfigServices:
    def __init__(self, store: Store, live: LiveState) -> None:
        self._store = store
        self._live = live
        self._import_lock = threading.Lock()

    @property
    def state(self) -> State:
        return self._live.current

    def _publish(self) -> None:
        """Make a committed write visible; should the snapshot fail to catch up now, the poller
        will, and the write, already committed, must still be acknowledged."""
        try:
            self._live.catch_up()
        except ModelConfigError as exc:
            log.warning("committed, but the snapshot could not catch up yet: %s", exc)

    # -- reads: served from the snapshot -------------------------------------------------------

    def list_models(
        self,
        provider: str,
        model_type: ModelType | None,
        active_only: bool,
        page_size: int,
        page_token: str,
    ) -> ModelPage:
        size = pagination.page_size(page_size)
        filters = (provider, model_type and model_type.value, active_only)
        after = pagination.decode(page_token, filters)
        state = self.state
        matching = (
            m
            for m in state.catalog.models.values()
            if m.id > after
            and (not provider or m.provider == provider)
            and (model_type is None or m.model_type is model_type)
            and (not active_only or m.is_active)
        )
        page: list[Model] = []
        more = False
        for model in matching:
            if len(page) == size:
                more = True
                break
            page.append(model)
        token = pagination.encode(page[-1].id, filters) if more else ""
        return ModelPage(page, token, state.revision)

    def get_model(self, ref: ModelRef) -> Model:
        return _find(self.state.catalog, ref.validated())

    def global_settings(self) -> GlobalSettings:
        state = self.state
        catalog = state.catalog
        views = [
            SlotView(slot, catalog.global_model(slot.name), catalog.models[slot.default_model_id])
            for slot in catalog.slots.values()
        ]
        return GlobalSettings(views, global_etag(catalog.global_revision), state.revision)

    def resolve(self, account_id: str, slots: Sequence[str]) -> Resolution:
        """The hot path: validation and dictionary look-ups on the snapshot, nothing else."""
        validation.account_id(account_id)
        state = self.state
        return Resolution(account_id, state.view(account_id, _slot_names(state, slots)), state)

    def resolve_many(self, account_ids: Sequence[str], slots: Sequence[str]) -> BatchResolution:
        """Resolve a batch against one State; a malformed account id fails only its own entry."""
        if not account_ids:
            raise InvalidArgument.field(
                "account_ids", "is empty; name at least one account", reason="NO_ACCOUNT_IDS"
            )
        if len(account_ids) > MAX_BATCH:
            raise InvalidArgument.field(
                "account_ids",
                f"{len(account_ids)} accounts in one call; the limit is {MAX_BATCH}",
                reason="BATCH_TOO_LARGE",
                limit=MAX_BATCH,
            )
        state = self.state
        names = _slot_names(state, slots)
        results: list[tuple[str, ResolvedView | ModelConfigError]] = []
        for i, account_id in enumerate(account_ids):
            try:
                validation.account_id(account_id, f"account_ids[{i}]")
            except InvalidArgument as exc:
                results.append((account_id, exc))
            else:
                results.append((account_id, state.view(account_id, names)))
        return BatchResolution(results, state)

    def model_usage(self, model_id: int) -> rules.Usage:
        validation.model_id(model_id)
        with self._store.read() as reader:
            usage = reader.usage(model_id, USAGE_SAMPLE)
        if usage is None:
            raise _not_found(ModelRef(model_id=model_id))
        return usage

    # -- catalog writes ------------------------------------------------------------------------

    def create_model(self, fields: Mapping[str, Any]) -> tuple[Model, int]:
        draft = validation.build_model(0, fields)
        with self._store.write() as uow:
            _refuse_taken_names(uow, draft)
            model = uow.insert_model(draft)
            revision = uow.record_change(CATALOG)
            uow.commit()
        self._publish()
        return model, revision

    def update_model(self, model_id: int, changes: Mapping[str, Any]) -> tuple[Model, int]:
        validation.model_id(model_id, "model.id")
        unknown = sorted(set(changes) - set(validation.MODEL_FIELDS))
        if unknown:
            raise InvalidArgument.field(
                "update_mask",
                f"unknown or read-only path(s): {', '.join(unknown)}",
                reason="INVALID_UPDATE_MASK",
                paths=",".join(unknown),
            )
        validation.check_fields(changes)
        with self._store.write() as uow:
            old = uow.get_model(model_id)
            if old is None:
                raise _not_found(ModelRef(model_id=model_id))
            new = validation.build_model(model_id, {**validation.model_fields(old), **changes})
            # Compared as fields, not as Models: a price retyped as 0.150 for 0.15 is a change.
            if validation.model_fields(new) == validation.model_fields(old):
                return old, uow.revision
            _refuse_taken_names(uow, new)
            rules.check_update_allowed(old, new, uow.usage(model_id))
            uow.update_model(new)
            revision = uow.record_change(CATALOG)
            uow.commit()
        self._publish()
        return new, revision

    def delete_model(self, model_id: int) -> int:
        validation.model_id(model_id)
        with self._store.write() as uow:
            model = uow.get_model(model_id)
            if model is None:
                raise _not_found(ModelRef(model_id=model_id))
            rules.check_deletable(model, uow.usage(model_id))
            uow.delete_model(model_id)
            revision = uow.record_change(CATALOG)
            uow.commit()
        self._publish()
        return revision

    # -- settings writes -----------------------------------------------------------------------

    def set_model(
        self, slot_name: str, ref: ModelRef, account_id: str, etag: str, validate_only: bool
    ) -> SetResult:
        catalog = self.state.catalog
        validation.slot_name(slot_name, catalog.slots)
        if account_id:
            validation.account_id(account_id)
        ref.validated()
        with self._store.write() as uow:
            current_etag = _check_etag(uow, account_id, etag)
            model = (
                uow.get_model(ref.model_id)
                if ref.model_id
                else uow.find_model(ref.model_name or "")
            )
            if model is None:
                raise _not_found(ref)
            slot = uow.slot(slot_name)
            assert slot is not None, "slots are seeded and never deleted"
            rules.check_fits(slot, model)
            if account_id:
                current_id = uow.override_model_id(account_id, slot_name)
            else:
                current_id = uow.global_model_id(slot_name)
            default = catalog.models[slot.default_model_id]
            if validate_only or current_id == model.id:
                return SetResult(SlotView(slot, model, default), uow.revision, current_etag)
            if account_id:
                revision = uow.record_change(ACCOUNT, account_id)
                uow.set_override(account_id, slot_name, model.id)
                new_etag = account_etag(revision)
            else:
                revision = uow.record_change(GLOBAL)
                uow.set_global(slot_name, model.id)
                new_etag = global_etag(revision)
            uow.commit()
        self._publish()
        return SetResult(SlotView(slot, model, default), revision, new_etag)

    def clear_account_model(self, account_id: str, slot_name: str, etag: str) -> tuple[int, str]:
        validation.account_id(account_id)
        validation.slot_name(slot_name, self.state.catalog.slots)
        with self._store.write() as uow:
            _check_etag(uow, account_id, etag)
            if uow.override_model_id(account_id, slot_name) is None:
                raise OverrideNotFound(
                    f"account {account_id!r} has no override of slot {slot_name!r}",
                    metadata={"account_id": account_id, "slot": slot_name},
                )
            revision = uow.record_change(ACCOUNT, account_id)
            uow.delete_override(account_id, slot_name)
            uow.commit()
        self._publish()
        return revision, account_etag(revision)

    def import_overrides(self, rows: Iterable[ImportRow], validate_only: bool) -> ImportResult:
        """Set many overrides in one transaction with one revision, or none if any row is bad.

        Rows are checked against the snapshot while they stream in, so the write lock is held
        only for the writing; in the transaction the distinct models the rows name are checked
        again against the database (ABORTED if the catalog changed meanwhile). Per row only a
        small tuple is kept: a million rows stay within a few hundred megabytes.
        """
        # One import at a time: each holds an RPC thread and a few hundred MB while it runs.
        if not self._import_lock.acquire(blocking=False):
            raise ImportInProgress("another import is running; retry when it has finished")
        try:
            return self._import(rows, validate_only)
        finally:
            self._import_lock.release()

    def _import(self, rows: Iterable[ImportRow], validate_only: bool) -> ImportResult:
        started = time.monotonic()
        catalog = self.state.catalog
        slots = {name: name for name in catalog.slots}  # one shared string per slot
        seen: dict[str, set[str]] = {name: set() for name in slots}
        chosen: dict[ModelRef, Model] = {}
        fits: dict[tuple[str, int], ModelConfigError | None] = {}
        records: list[tuple[str, str, int]] = []
        bad: list[tuple[int, ModelConfigError]] = []
        for row in rows:
            try:
                account_id = validation.account_id(row.account_id)
                slot = slots.get(row.slot) or validation.slot_name(row.slot, slots)
                if account_id in seen[slot]:
                    raise InvalidArgument.field(
                        "slot",
                        f"account {account_id!r} slot {slot!r} appears twice",
                        reason="DUPLICATE_ROW",
                    )
                model = chosen.get(row.ref) or chosen.setdefault(
                    row.ref, _find(catalog, row.ref.validated())
                )
                if (slot, model.id) not in fits:
                    fits[slot, model.id] = _fit_error(catalog.slots[slot], model)
                if fits[slot, model.id] is not None:
                    raise fits[slot, model.id]
            except ModelConfigError as exc:
                bad.append((row.line, exc))
                continue
            seen[slot].add(account_id)
            records.append((account_id, slot, model.id))
        if bad:
            raise bad[0][1].for_rows(sorted(bad, key=lambda pair: pair[0]))
        if not records:
            raise InvalidArgument.field("rows", "the import has no rows", reason="EMPTY_IMPORT")
        accounts = len(set().union(*seen.values()))
        del seen
        checked_at = time.monotonic()
        with self._store.write() as uow:
            _recheck_catalog(uow.catalog(), chosen, {pair for pair, e in fits.items() if not e})
            if validate_only:
                return ImportResult(len(records), accounts, uow.revision)
            revision = uow.record_change(IMPORT)
            uow.import_overrides(records, revision)
            uow.commit()
        committed_at = time.monotonic()
        self._publish()
        log.info(
            "imported %d overrides for %d accounts at revision %d: checked in %.1fs, "
            "written in %.1fs, published in %.1fs",
            len(records),
            accounts,
            revision,
            checked_at - started,
            committed_at - checked_at,
            time.monotonic() - committed_at,
        )
        return ImportResult(len(records), accounts, revision)


def _slot_names(state: State, slots: Sequence[str]) -> tuple[str, ...]:
    """The requested slots, checked and without repeats; every slot when none is named."""
    if not slots:
        return state.all_slots
    known = state.catalog.slot_index
    for i, name in enumerate(slots):
        if name not in known:
            validation.slot_name(name, known, f"slots[{i}]")
    names = tuple(slots)
    return names if len(set(names)) == len(names) else tuple(dict.fromkeys(names))


def _not_found(ref: ModelRef) -> ModelNotFound:
    if ref.model_id is not None:
        meta: dict[str, object] = {"model_id": ref.model_id}
    else:
        meta = {"model_name": ref.model_name}
    return ModelNotFound(f"no model has {ref}", metadata=meta)


def _find(catalog: Catalog, ref: ModelRef) -> Model:
    """The model a reference names in a catalog; ModelNotFound if none."""
    if ref.model_id is not None:
        model = catalog.models.get(ref.model_id)
    else:
        model = catalog.find(ref.model_name or "")
    if model is None:
        raise _not_found(ref)
    return model


def _recheck_catalog(
    catalog: Catalog, chosen: Mapping[ModelRef, Model], pairs: set[tuple[str, int]]
) -> None:
    """ABORTED unless every reference still names the same model and every pair still fits."""
    changed = Aborted(
        "the catalog changed while the import was being checked; run it again",
        reason="CATALOG_CHANGED",
    )
    for ref, model in chosen.items():
        try:
            if _find(catalog, ref).id != model.id:
                raise changed
        except ModelNotFound:
            raise changed from None
    for slot, model_id in pairs:
        current = catalog.models.get(model_id)
        if current is None or _fit_error(catalog.slots[slot], current) is not None:
            raise changed


def _fit_error(slot: Slot, model: Model) -> ModelConfigError | None:
    try:
        rules.check_fits(slot, model)
    except ModelConfigError as exc:
        return exc
    return None


def _check_etag(uow: WriteUnit, account_id: str, etag: str) -> str:
    """The scope's current etag; EtagMismatch when the caller's is stale (empty skips the check)."""
    if account_id:
        scope, current = f"account {account_id!r}", account_etag(uow.account_revision(account_id))
    else:
        scope, current = "global settings", global_etag(uow.global_revision)
    if etag and etag != current:
        raise EtagMismatch(
            f"etag {etag!r} is stale: the {scope} changed since it was read (now {current!r}); "
            "read again and retry",
            metadata={"etag": etag, "current_etag": current, "account_id": account_id},
        )
    return current


def _refuse_taken_names(uow: WriteUnit, model: Model) -> None:
    taken = uow.names_taken(model.names, except_model=model.id or None)
    if taken:
        name, owner = next(iter(taken.items()))
        raise AlreadyExists(
            f"name {name!r} is already the name or an alias of model id {owner}",
            reason="MODEL_NAME_TAKEN",
            metadata={"name": name, "model_id": owner},
        )
