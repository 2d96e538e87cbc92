"""The use cases: reads from the live snapshot, writes as one unit of work each.

Checks run in the order clients rely on: a malformed request (InvalidArgument) before any
database work, then a stale etag (EtagMismatch), then the state (NotFound, FailedPrecondition).
A write that changes something commits exactly one recorded change with its origin; refused,
no-op and validate-only writes commit nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..domain import access, changes, rules, validation
from ..domain.access import Role
from ..domain.changes import LOCAL, Change, ChangeFilter, Origin, Scope
from ..domain.costs import Volume
from ..domain.errors import (
    ChangeNotFound,
    GlobalSettingNotFound,
    ImportInProgress,
    InvalidArgument,
    ModelConfigError,
    OverrideNotFound,
    RevisionMoved,
    SlotNotFound,
)
from ..domain.model import Deprecation, Model, ModelType, Slot
from ..domain.state import Resolved, ResolvedView, State, utc_today
from . import (
    configurations,
    estimates,
    imports,
    pagination,
    retirements,
    reverts,
    write_steps,
)
from .configurations import ApplyOutcome
from .estimates import CostAnswer
from .imports import ImportRow
from .live_state import LiveState
from .retirements import Retirement
from .unit_of_work import AccountOverrides, Store, UnitOfWork
from .views import GlobalSettings, SlotView, global_settings_of
from .write_steps import ModelRef

__all__ = ["ImportRow", "ModelConfigServices", "ModelRef"]

log = logging.getLogger(__name__)

MAX_BATCH = 1000


@dataclass(frozen=True)
class ModelPage:
    models: list[Model]
    next_page_token: str
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
class UsagePage:
    usage: rules.Usage
    next_page_token: str
    revision: int


@dataclass(frozen=True)
class ChangePage:
    changes: list[Change]
    next_page_token: str


@dataclass(frozen=True)
class ImportResult:
    rows: int
    accounts: int
    revision: int
    changed_rows: int


@dataclass(frozen=True)
class SetResult:
    setting: SlotView
    revision: int
    etag: str


@dataclass(frozen=True)
class Export:
    models: list[Model]
    slots: list[Slot]
    global_settings: dict[str, int]
    override_count: int
    overrides: Iterator[tuple[str, str, int]]  # in (account id, slot order) order
    revision: int


@dataclass(frozen=True)
class ApplyResult:
    outcome: ApplyOutcome
    revision: int


@dataclass(frozen=True)
class AccountPage:
    accounts: list[AccountOverrides]
    next_page_token: str
    revision: int


@dataclass(frozen=True)
class Retired:
    retirement: Retirement
    revision: int


@dataclass(frozen=True)
class RevertResult:
    change: Change | None
    revision: int


class ModelConfigServices:
    def __init__(self, store: Store, live: LiveState) -> None:
        self._store = store
        self._live = live
        self._import_lock = threading.Lock()

    @property
    def state(self) -> State:
        return self._live.current

    @contextmanager
    def _writing(self, origin: Origin) -> Iterator[UnitOfWork]:
        """One unit of work; once it has committed, its change is published before returning."""
        with self._store.write(origin) as uow:
            yield uow
        change = uow.committed
        if change is not None:
            log.info(
                "%s by %s: %s (revision %d, request %s)",
                origin.method or "write",
                origin.actor,
                change.summary(),
                change.revision,
                origin.request_id or "-",
                extra={
                    "actor": origin.actor,
                    "rpc": origin.method,
                    "kind": change.kind.value,
                    "scope": change.scope and change.scope.value,
                    "before": change.before,
                    "after": change.after,
                    "revision": change.revision,
                    "request_id": origin.request_id,
                },
            )
            self._publish()

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
        deprecation: Deprecation | None = None,
    ) -> ModelPage:
        size = pagination.page_size(page_size)
        filters: tuple[object, ...] = (provider, model_type and model_type.value, active_only)
        if deprecation is not None:
            filters += (deprecation.value,)
        after = pagination.decode(page_token, filters)
        state = self.state
        today = utc_today()
        matching = (
            m
            for m in state.catalog.models.values()
            if m.id > after
            and (not provider or m.provider == provider)
            and (model_type is None or m.model_type is model_type)
            and (not active_only or m.is_active)
            and (deprecation is None or deprecation.keeps(m, today))
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
        return imports.find(self.state.catalog, ref.validated())

    def global_settings(self) -> GlobalSettings:
        return global_settings_of(self.state)

    def list_slots(self) -> tuple[list[tuple[Slot, Model]], int]:
        state = self.state
        models = state.catalog.models
        slots = [(s, models[s.default_model_id]) for s in state.catalog.slots.values()]
        return slots, state.revision

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

    # -- reads: operator queries answered by the database --------------------------------------

    def model_usage(self, model_id: int, page_size: int = 0, page_token: str = "") -> UsagePage:
        validation.model_id(model_id)
        size = pagination.page_size(page_size)
        after = pagination.decode_text(page_token, (model_id,))
        with self._store.read() as unit:
            if unit.models.get(model_id) is None:
                raise write_steps.not_found(ModelRef(model_id=model_id))
            usage = unit.models.usage(model_id, sample=0)
            accounts = unit.overrides.accounts_using(model_id, after, size + 1)
            revision = unit.revision
        token = pagination.encode(accounts[size - 1], (model_id,)) if len(accounts) > size else ""
        page = rules.Usage(
            usage.global_slots,
            usage.default_slots,
            usage.account_override_count,
            tuple(accounts[:size]),
            usage.successor_of,
        )
        return UsagePage(page, token, revision)

    def estimate_cost(
        self,
        slot_name: str,
        account_id: str,
        scope: Scope | None,
        volume: Volume,
        weighted: bool = False,
    ) -> CostAnswer:
        """What the volume costs under the slot's model and every model it accepts."""
        return estimates.estimate_cost(
            self.state, slot_name, account_id, scope, volume, weighted
        )

    def list_accounts(
        self, slot: str, model_id: int, page_size: int, page_token: str
    ) -> AccountPage:
        """Accounts with overrides, in id order, each with all its overrides."""
        if slot:
            validation.slot_name(slot, self.state.catalog.slots)
        if model_id:
            validation.model_id(model_id)
        size = pagination.page_size(page_size)
        filters = (slot, model_id)
        after = pagination.decode_text(page_token, filters)
        with self._store.read() as unit:
            found = unit.overrides.accounts_page(slot, model_id, after, size + 1)
            revision = unit.revision
        more = len(found) > size
        token = pagination.encode(found[size - 1].account_id, filters) if more else ""
        return AccountPage(found[:size], token, revision)

    def list_changes(self, where: ChangeFilter, page_size: int, page_token: str) -> ChangePage:
        _check_filter(where)
        size = pagination.page_size(page_size)
        before = pagination.decode(page_token, where.key())
        with self._store.read() as unit:
            found = unit.changes.page(where, before, size + 1)
        more = len(found) > size
        token = pagination.encode(found[size - 1].revision, where.key()) if more else ""
        return ChangePage(found[:size], token)

    # -- catalog writes ------------------------------------------------------------------------

    def create_model(self, fields: Mapping[str, Any], origin: Origin = LOCAL) -> tuple[Model, int]:
        draft = validation.build_model(0, fields)
        with self._writing(origin) as uow:
            model, change = write_steps.add_model(uow, draft)
            revision = uow.commit(change).revision
        return model, revision

    def update_model(
        self, model_id: int, fields: Mapping[str, Any], origin: Origin = LOCAL
    ) -> tuple[Model, int]:
        validation.model_id(model_id, "model.id")
        _refuse_unknown_paths(fields, validation.MODEL_FIELDS)
        validation.check_fields(fields)
        with self._writing(origin) as uow:
            model, change = write_steps.update_model(uow, model_id, fields)
            revision = uow.commit(change).revision if change else uow.revision
        return model, revision

    def delete_model(self, model_id: int, origin: Origin = LOCAL) -> int:
        validation.model_id(model_id)
        with self._writing(origin) as uow:
            return uow.commit(write_steps.delete_model(uow, model_id)).revision

    def create_slot(self, fields: Mapping[str, Any], origin: Origin = LOCAL) -> tuple[Slot, int]:
        slot = validation.build_slot(fields)
        with self._writing(origin) as uow:
            revision = uow.commit(write_steps.add_slot(uow, slot)).revision
        return slot, revision

    def update_slot(
        self, name: str, fields: Mapping[str, Any], origin: Origin = LOCAL
    ) -> tuple[Slot, int]:
        if not name:
            raise InvalidArgument.field("slot.name", "is required", reason="SLOT_NAME_REQUIRED")
        _refuse_unknown_paths(fields, validation.SLOT_FIELDS)
        validation.slot_fields(fields, creating=False)
        if "display_name" in fields:
            fields = {**fields, "display_name": fields["display_name"].strip() or name}
        with self._writing(origin) as uow:
            old = uow.slots.get(name)
            if old is None:
                raise SlotNotFound(f"no slot is named {name!r}", metadata={"slot": name})
            slot, change = write_steps.update_slot(uow, old, fields)
            revision = uow.commit(change).revision if change else uow.revision
        return slot, revision

    # -- settings writes -----------------------------------------------------------------------

    def set_model(
        self,
        slot_name: str,
        ref: ModelRef,
        account_id: str,
        etag: str,
        validate_only: bool,
        scope: Scope | None = None,
        origin: Origin = LOCAL,
    ) -> SetResult:
        scope = validation.write_scope(scope, account_id)
        if scope is Scope.GLOBAL:
            access.require(origin.role, Role.ADMIN, "SetModel of a global setting")
        ref.validated()
        with self._writing(origin) as uow:
            slot = write_steps.known_slot(uow, slot_name)
            current_etag = write_steps.check_etag(uow, scope, account_id, etag)
            model = write_steps.find_model(uow, ref)
            rules.check_fits(slot, model)
            view = SlotView(slot, model, write_steps.existing_model(uow, slot.default_model_id))
            change = (
                None
                if validate_only
                else write_steps.write_setting(uow, scope, slot, account_id, model)
            )
            if change is None:
                return SetResult(view, uow.revision, current_etag)
            revision = uow.commit(change).revision
        return SetResult(view, revision, write_steps.etag_after(scope, revision))

    def clear_account_model(
        self, account_id: str, slot_name: str, etag: str, origin: Origin = LOCAL
    ) -> tuple[int, str]:
        validation.account_id(account_id)
        with self._writing(origin) as uow:
            slot = write_steps.known_slot(uow, slot_name)
            write_steps.check_etag(uow, Scope.ACCOUNT, account_id, etag)
            change = write_steps.write_setting(uow, Scope.ACCOUNT, slot, account_id, None)
            if change is None:
                raise OverrideNotFound(
                    f"account {account_id!r} has no override of slot {slot_name!r}",
                    metadata={"account_id": account_id, "slot": slot_name},
                )
            revision = uow.commit(change).revision
        return revision, write_steps.etag_after(Scope.ACCOUNT, revision)

    def clear_global_model(
        self, slot_name: str, etag: str, origin: Origin = LOCAL
    ) -> tuple[int, str]:
        with self._writing(origin) as uow:
            slot = write_steps.known_slot(uow, slot_name)
            write_steps.check_etag(uow, Scope.GLOBAL, "", etag)
            change = write_steps.write_setting(uow, Scope.GLOBAL, slot, "", None)
            if change is None:
                raise GlobalSettingNotFound(
                    f"slot {slot_name!r} has no global setting; it resolves to its default",
                    metadata={"slot": slot_name},
                )
            revision = uow.commit(change).revision
        return revision, write_steps.etag_after(Scope.GLOBAL, revision)

    def import_overrides(
        self, rows: Iterable[ImportRow], validate_only: bool, origin: Origin = LOCAL
    ) -> ImportResult:
        """Set many overrides in one transaction with one revision, or none if any row is bad."""
        # One import at a time: each holds an RPC thread and a few hundred MB while it runs.
        if not self._import_lock.acquire(blocking=False):
            raise ImportInProgress("another import is running; retry when it has finished")
        try:
            return self._import(rows, validate_only, origin)
        finally:
            self._import_lock.release()

    def _import(
        self, rows: Iterable[ImportRow], validate_only: bool, origin: Origin
    ) -> ImportResult:
        started = time.monotonic()
        checked = imports.check_rows(self.state.catalog, rows)
        checked_at = time.monotonic()
        total, accounts = len(checked.records), checked.accounts
        with self._writing(origin) as uow:
            imports.recheck(uow.catalog(), checked)
            if validate_only:
                return ImportResult(total, accounts, uow.revision, 0)
            applied = uow.overrides.apply(checked.records)
            del checked  # a million rows: free them before the snapshot catches up
            if not applied.rows:  # every row equals what is stored: nothing to record
                return ImportResult(total, accounts, uow.revision, 0)
            change = changes.imported(applied.rows, applied.accounts, applied.models, applied.slots)
            revision = uow.commit(change).revision
            committed_at = time.monotonic()
        log.info(
            "imported %d rows (%d changed overrides of %d accounts) at revision %d: checked in "
            "%.1fs, written in %.1fs, published in %.1fs",
            total,
            applied.rows,
            applied.accounts,
            revision,
            checked_at - started,
            committed_at - checked_at,
            time.monotonic() - committed_at,
        )
        return ImportResult(total, accounts, revision, applied.rows)

    def retire_model(
        self, model_id: int, successor_id: int, validate_only: bool, origin: Origin = LOCAL
    ) -> Retired:
        """Move every setting that selects the model to its successor, in one change."""
        validation.model_id(model_id)
        validation.model_id(successor_id, "successor_id")
        if model_id == successor_id:
            raise InvalidArgument.field(
                "successor_id",
                f"model {model_id} cannot succeed itself",
                reason="SAME_MODEL",
                model_id=model_id,
            )
        with self._writing(origin) as uow:
            retired = retirements.retire(uow, model_id, successor_id)
            if validate_only or retired.change is None:
                return Retired(retired, uow.revision)
            revision = uow.commit(retired.change).revision
        return Retired(retired, revision)

    # -- whole configurations ------------------------------------------------------------------

    def export_configuration(self) -> Export:
        """The whole configuration as of the snapshot's revision."""
        state = self.state
        catalog = state.catalog
        slots = state.all_slots

        def overrides() -> Iterator[tuple[str, str, int]]:
            for account_id, record in sorted(state.accounts.items()):
                for slot, model_id in zip(slots, record[1:], strict=False):
                    if model_id is not None:
                        yield account_id, slot, model_id

        count = sum(
            1 for _, record in state.accounts.items() for m in record[1:] if m is not None
        )
        return Export(
            [catalog.models[i] for i in sorted(catalog.models)],
            list(catalog.slots.values()),
            dict(catalog.global_models),
            count,
            overrides(),
            state.revision,
        )

    def apply_configuration(
        self,
        models: Sequence[tuple[int, Mapping[str, Any]]],
        slots: Sequence[Mapping[str, Any]],
        global_settings: Sequence[tuple[str, int]],
        overrides: Iterable[ImportRow] | None,
        validate_only: bool,
        origin: Origin = LOCAL,
        expected_revision: int = 0,
    ) -> ApplyResult:
        """Make the configuration match, in one change; overrides too unless None."""
        built = []
        for i, (model_id, fields) in enumerate(models):
            try:
                built.append(validation.build_model(model_id, fields))
            except InvalidArgument as exc:
                exc.message = f"configuration.models[{i}] (id {model_id}): {exc.message}"
                exc.args = (exc.message,)
                raise
        settings: dict[str, int] = {}
        for slot, model_id in global_settings:
            if slot in settings:
                raise InvalidArgument.field(
                    "configuration.global_settings",
                    f"slot {slot!r} has two global settings",
                    reason="DUPLICATE_IN_CONFIGURATION",
                    slot=slot,
                )
            settings[slot] = model_id
        wanted = configurations.target(
            built, [validation.build_slot(fields) for fields in slots], settings
        )
        # Before the overrides stream in: two bulk writes must not both hold a million rows.
        if not self._import_lock.acquire(blocking=False):
            raise ImportInProgress("an import is running; retry when it has finished")
        try:
            checked = (
                None if overrides is None else configurations.check_overrides(wanted, overrides)
            )
            with self._writing(origin) as uow:
                if expected_revision and uow.revision != expected_revision:
                    raise RevisionMoved(
                        f"the daemon is at revision {uow.revision}, not {expected_revision}: "
                        "something changed since the configuration was compared; compare again",
                        metadata={"revision": uow.revision, "expected_revision": expected_revision},
                    )
                records = None if checked is None else checked.records
                change, outcome = configurations.apply(uow, wanted, records)
                if change is None or validate_only:
                    return ApplyResult(outcome, uow.revision)
                recorded = uow.commit(change)
        finally:
            self._import_lock.release()
        return ApplyResult(outcome, recorded.revision)

    # -- the audit trail -----------------------------------------------------------------------

    def revert_change(
        self, revision: int, force: bool, validate_only: bool, origin: Origin = LOCAL
    ) -> RevertResult:
        validation.revision(revision)
        with self._writing(origin) as uow:
            change = uow.changes.get(revision)
            if change is None:
                raise ChangeNotFound(
                    f"no change has revision {revision}", metadata={"revision": revision}
                )
            restoring = reverts.revert(uow, change, force)
            if restoring is None or validate_only:
                return RevertResult(restoring, uow.revision)
            recorded = uow.commit(restoring)
        return RevertResult(recorded, recorded.revision)


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


def _refuse_unknown_paths(fields: Mapping[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise InvalidArgument.field(
            "update_mask",
            f"unknown or read-only path(s): {', '.join(unknown)}",
            reason="INVALID_UPDATE_MASK",
            paths=",".join(unknown),
        )


def _check_filter(where: ChangeFilter) -> None:
    """A ListChanges filter is malformed when a value could never match or a range is empty."""
    if where.model_id:
        validation.model_id(where.model_id)
    if where.account_id:
        validation.account_id(where.account_id)
    if where.min_revision < 0 or where.max_revision < 0:
        raise InvalidArgument.field(
            "min_revision" if where.min_revision < 0 else "max_revision",
            "is negative",
            reason="INVALID_REVISION",
        )
    if where.max_revision and where.min_revision > where.max_revision:
        raise InvalidArgument.field(
            "max_revision",
            f"{where.max_revision} is below min_revision {where.min_revision}",
            reason="EMPTY_RANGE",
        )
    if where.start_time and where.end_time and where.start_time >= where.end_time:
        raise InvalidArgument.field("end_time", "is not after start_time", reason="EMPTY_RANGE")
