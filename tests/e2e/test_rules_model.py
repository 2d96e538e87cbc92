"""A model of the rules: random write and read sequences against a daemon and a plain oracle.

Hypothesis's stateful testing drives SetModel (global and per account, valid and invalid models,
current, stale and no etags, validate_only), ClearAccountModel, ClearGlobalModel, UpdateModel
(activate/deactivate), CreateModel, DeleteModel and RevertChange against a real daemon on a
fresh database, and against `Rules` below: an in-memory model written from README "The rules"
and the proto comments, sharing no code with the daemon. Every answer and every status (code and
ErrorInfo reason) must agree, and the reads (ResolveForAccount, GetGlobalSettings,
GetModelUsage, the head of ListChanges) must show the state the model predicts.

Where the specification leaves an order open (a model of the wrong provider *and* type), the
model states the order it expects in a comment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import grpc
import psycopg
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb
from tests.conftest import SOAK, _with_database, start_daemon

from .secure_helpers import refusal

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXISTS = grpc.StatusCode.ALREADY_EXISTS
ABORTED = grpc.StatusCode.ABORTED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION

ACCOUNTS = ("acct-1", "acct-2", "acct-3")
SLOTS = ("openai_model", "dalle_model", "runware_model", "anthropic_model")
# A handful of seeded models: openai text (1 is a default), anthropic text (4 is a default),
# runware image (6 is a default), openai image (7, a default); and ids that never exist.
SEEDED_POOL = (1, 2, 3, 4, 5, 6, 7)
MISSING_ID = 999
# Models the machine may create: (name, provider, type). A seeded name is taken.
NEW_MODELS = (
    ("lab-openai", "openai", pb.MODEL_TYPE_TEXT),
    ("lab-claude", "anthropic", pb.MODEL_TYPE_TEXT),
    ("lab-flux", "runware", pb.MODEL_TYPE_IMAGE),
    ("gpt-3.5-turbo", "openai", pb.MODEL_TYPE_TEXT),
)
ETAGS = ("none", "none", "current", "stale")
# SetModel's scope and account: mostly the valid forms, sometimes each malformed one.
SCOPES = ("global", "account", "account-unset") * 3 + ("no-scope", "global+acct", "account-empty")
TIMEOUT = 30

# Figures of the run, printed at the end (pytest -s).
FIGURES: Counter[str] = Counter()


class Refused(Exception):
    """The oracle's prediction that a call is refused with this code and reason."""

    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(f"{code.name} {reason}")
        self.code, self.reason = code, reason


# -- the oracle ----------------------------------------------------------------------------------


@dataclass
class Model:
    id: int
    names: tuple[str, ...]  # model_name first, then aliases
    provider: str
    type: int
    active: bool
    successor: int = 0


@dataclass
class Slot:
    provider: str
    type: int
    default: int


@dataclass
class Change:
    """One committed change, as much of it as the rules need."""

    revision: int
    kind: int
    scope: int = pb.SCOPE_UNSPECIFIED
    slot: str = ""
    account: str = ""
    model_id: int = 0
    before: object = None  # settings: a model id (0 none); models: a Model or None
    after: object = None
    reverted: int = 0

    @property
    def key(self) -> tuple:
        """What the change touched: one setting, or one model."""
        if self.kind == pb.CHANGE_KIND_SETTING:
            return ("setting", self.scope, self.slot, self.account)
        return ("model", self.model_id)


@dataclass
class Rules:
    """The rules, in memory: README "The rules" and the proto comments, nothing else."""

    models: dict[int, Model]
    slots: dict[str, Slot]
    globals: dict[str, int]
    overrides: dict[tuple[str, str], int] = field(default_factory=dict)
    revision: int = 1
    global_revision: int = 1
    account_revisions: dict[str, int] = field(default_factory=dict)
    changes: dict[int, Change] = field(default_factory=dict)
    next_id: int = 0

    # -- etags and lookups --

    def global_etag(self) -> str:
        return f"g{self.global_revision}"

    def account_etag(self, account: str) -> str:
        return f"a{self.account_revisions.get(account, 0)}"

    def find(self, ref: int | str) -> Model:
        for model in self.models.values():
            if model.id == ref or ref in model.names:
                return model
        raise Refused(NOT_FOUND, "MODEL_NOT_FOUND")

    def name_holder(self, names: tuple[str, ...]) -> Model | None:
        return next((m for m in self.models.values() if set(m.names) & set(names)), None)

    def check_fits(self, slot: str, model: Model) -> None:
        want = self.slots[slot]
        # The spec does not order these; the model expects provider, then type, then activity.
        if model.provider != want.provider:
            raise Refused(PRECONDITION, "PROVIDER_MISMATCH")
        if model.type != want.type:
            raise Refused(PRECONDITION, "MODEL_TYPE_MISMATCH")
        if not model.active:
            raise Refused(PRECONDITION, "MODEL_INACTIVE")

    def usage(self, model_id: int) -> tuple[list[str], list[str], list[str], list[int]]:
        globals_ = [s for s in self.slots if self.globals.get(s) == model_id]
        defaults = [s for s in self.slots if self.slots[s].default == model_id]
        accounts = sorted({a for (a, _), m in self.overrides.items() if m == model_id})
        successor_of = sorted(m.id for m in self.models.values() if m.successor == model_id)
        return globals_, defaults, accounts, successor_of

    def commit(self, change: Change) -> Change:
        self.revision += 1
        change.revision = self.revision
        self.changes[self.revision] = change
        if change.kind == pb.CHANGE_KIND_SETTING:
            if change.scope == pb.SCOPE_GLOBAL:
                self.global_revision = self.revision
            else:
                self.account_revisions[change.account] = self.revision
        return change

    # -- settings --

    def current_setting(self, scope: int, slot: str, account: str) -> int:
        if scope == pb.SCOPE_GLOBAL:
            return self.globals.get(slot, 0)
        return self.overrides.get((account, slot), 0)

    def put_setting(self, scope: int, slot: str, account: str, model_id: int) -> None:
        table, key = (
            (self.globals, slot) if scope == pb.SCOPE_GLOBAL else (self.overrides, (account, slot))
        )
        if model_id:
            table[key] = model_id  # type: ignore[index]
        else:
            table.pop(key, None)  # type: ignore[arg-type]

    def check_etag(self, scope: int, account: str, etag: str) -> str:
        current = self.global_etag() if scope == pb.SCOPE_GLOBAL else self.account_etag(account)
        if etag and etag != current:
            raise Refused(ABORTED, "ETAG_MISMATCH")
        return current

    def set_model(
        self, slot: str, ref: int | str, account: str, scope: int, etag: str, validate_only: bool
    ) -> tuple[int, int, str]:
        """(model id now selected, revision, etag) or Refused."""
        if scope == pb.SCOPE_UNSPECIFIED and not account:
            raise Refused(INVALID, "SCOPE_REQUIRED")
        if (scope == pb.SCOPE_GLOBAL) == bool(account):
            raise Refused(INVALID, "SCOPE_CONFLICT")
        scope = pb.SCOPE_ACCOUNT if account else pb.SCOPE_GLOBAL
        if slot not in self.slots:
            raise Refused(INVALID, "UNKNOWN_SLOT")
        current_etag = self.check_etag(scope, account, etag)
        model = self.find(ref)
        self.check_fits(slot, model)
        before = self.current_setting(scope, slot, account)
        if validate_only or before == model.id:
            return model.id, self.revision, current_etag
        self.put_setting(scope, slot, account, model.id)
        self.commit(Change(0, pb.CHANGE_KIND_SETTING, scope, slot, account, 0, before, model.id))
        etag_now = self.global_etag() if scope == pb.SCOPE_GLOBAL else self.account_etag(account)
        return model.id, self.revision, etag_now

    def clear(self, scope: int, slot: str, account: str, etag: str) -> tuple[int, str]:
        if slot not in self.slots:
            raise Refused(INVALID, "UNKNOWN_SLOT")
        self.check_etag(scope, account, etag)
        before = self.current_setting(scope, slot, account)
        if not before:
            missing = (
                "GLOBAL_SETTING_NOT_FOUND" if scope == pb.SCOPE_GLOBAL else ("OVERRIDE_NOT_FOUND")
            )
            raise Refused(NOT_FOUND, missing)
        self.put_setting(scope, slot, account, 0)
        self.commit(Change(0, pb.CHANGE_KIND_SETTING, scope, slot, account, 0, before, 0))
        etag_now = self.global_etag() if scope == pb.SCOPE_GLOBAL else self.account_etag(account)
        return self.revision, etag_now

    # -- the catalog --

    def create_model(self, name: str, provider: str, type_: int, active: bool) -> int:
        if self.name_holder((name,)):
            raise Refused(EXISTS, "MODEL_NAME_TAKEN")
        model = Model(self.next_id, (name,), provider, type_, active)
        self.next_id += 1
        self.models[model.id] = model
        self.commit(Change(0, pb.CHANGE_KIND_MODEL_CREATED, model_id=model.id, after=model))
        return model.id

    def check_deactivation(self, model: Model) -> None:
        globals_, defaults, _, _ = self.usage(model.id)
        if globals_ or defaults:
            raise Refused(PRECONDITION, "MODEL_IN_USE")

    def set_active(self, model_id: int, active: bool, reverted: int = 0) -> Change | None:
        model = self.models.get(model_id)
        if model is None:
            raise Refused(NOT_FOUND, "MODEL_NOT_FOUND")
        if model.active == active:
            return None  # a no-op: nothing recorded, the revision kept
        if not active:
            self.check_deactivation(model)
        before = Model(**{**model.__dict__})
        model.active = active
        return self.commit(
            Change(
                0,
                pb.CHANGE_KIND_MODEL_UPDATED,
                model_id=model_id,
                before=before,
                after=Model(**{**model.__dict__}),
                reverted=reverted,
            )
        )

    def check_deletion(self, model_id: int) -> None:
        if any(self.usage(model_id)):
            raise Refused(PRECONDITION, "MODEL_IN_USE")

    def delete_model(self, model_id: int, reverted: int = 0) -> Change:
        model = self.models.get(model_id)
        if model is None:
            raise Refused(NOT_FOUND, "MODEL_NOT_FOUND")
        self.check_deletion(model_id)
        del self.models[model_id]
        return self.commit(
            Change(
                0, pb.CHANGE_KIND_MODEL_DELETED, model_id=model_id, before=model, reverted=reverted
            )
        )

    # -- reverts --

    def revert(self, revision: int, force: bool, validate_only: bool) -> Change | None:
        """The change a revert records (revision 0 when validate_only), None when no-op."""
        change = self.changes.get(revision)
        if change is None:
            if revision == 1:
                raise Refused(PRECONDITION, "NOT_REVERTIBLE")  # the seed
            raise Refused(NOT_FOUND, "CHANGE_NOT_FOUND")
        later = [r for r, c in self.changes.items() if r > revision and c.key == change.key]
        if later and not force:
            raise Refused(PRECONDITION, "CHANGED_SINCE")
        if validate_only:
            saved = Rules(
                **{k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}
            )
            saved.models = {k: Model(**{**m.__dict__}) for k, m in self.models.items()}
            result = saved._restore(change)
            if result is not None:
                result.revision = 0
            return result
        return self._restore(change)

    def _restore(self, change: Change) -> Change | None:
        if change.kind == pb.CHANGE_KIND_SETTING:
            target, now = (
                change.before,
                self.current_setting(change.scope, change.slot, change.account),
            )
            assert isinstance(target, int)
            if target == now:
                return None
            if target:
                self.check_fits(change.slot, self.find(target))
            self.put_setting(change.scope, change.slot, change.account, target)
            return self.commit(
                Change(
                    0,
                    pb.CHANGE_KIND_SETTING,
                    change.scope,
                    change.slot,
                    change.account,
                    0,
                    now,
                    target,
                    reverted=change.revision,
                )
            )
        if change.kind == pb.CHANGE_KIND_MODEL_UPDATED:
            assert isinstance(change.before, Model)
            return self.set_active(change.model_id, change.before.active, change.revision)
        if change.kind == pb.CHANGE_KIND_MODEL_CREATED:
            if change.model_id not in self.models:
                return None  # gone already (deleted since; only reachable with force)
            return self.delete_model(change.model_id, change.revision)
        assert change.kind == pb.CHANGE_KIND_MODEL_DELETED
        assert isinstance(change.before, Model)
        if change.model_id in self.models:
            # Back already (a forced revert, the deletion having been reverted since): what the
            # deletion replaced is restored onto it, which here can only be its activity.
            return self.set_active(change.model_id, change.before.active, change.revision)
        if self.name_holder(change.before.names):
            raise Refused(EXISTS, "MODEL_NAME_TAKEN")
        model = Model(**{**change.before.__dict__})
        self.models[model.id] = model
        return self.commit(
            Change(
                0,
                pb.CHANGE_KIND_MODEL_CREATED,
                model_id=model.id,
                after=model,
                reverted=change.revision,
            )
        )

    # -- reads --

    def resolve(self, account: str) -> list[tuple[str, int, int, int]]:
        """Per slot: (slot, model id, source, skipped override id or 0)."""
        out = []
        for name, slot in self.slots.items():
            chosen = self.overrides.get((account, name))
            if chosen and self.models[chosen].active:
                out.append((name, chosen, pb.SOURCE_ACCOUNT, 0))
                continue
            skipped = chosen or 0
            if name in self.globals:
                out.append((name, self.globals[name], pb.SOURCE_GLOBAL, skipped))
            else:
                out.append((name, slot.default, pb.SOURCE_DEFAULT, skipped))
        return out


def read_rules(stub) -> Rules:
    """The seed as the daemon loaded it: the data the rules start from (not the rules)."""
    models = {}
    token = ""
    while True:
        page = stub.ListModels(api.ListModelsRequest(page_size=1000, page_token=token))
        for m in page.models:
            models[m.id] = Model(
                m.id,
                (m.model_name, *m.aliases),
                m.provider,
                m.model_type,
                m.is_active,
                m.successor_id,
            )
        token = page.next_page_token
        if not token:
            break
    slots = {
        s.name: Slot(s.required_provider, s.required_model_type, s.default_model_id)
        for s in stub.ListSlots(api.ListSlotsRequest()).slots
    }
    settings_ = stub.GetGlobalSettings(api.GetGlobalSettingsRequest())
    globals_ = {s.slot: s.model.id for s in settings_.slots if s.HasField("model")}
    assert (settings_.revision, settings_.etag) == (1, "g1"), "a fresh database holds the seed"
    return Rules(models, slots, globals_, next_id=max(models) + 1)


# -- the machine ---------------------------------------------------------------------------------


def predict(action):
    """(result, code, reason): what the oracle says a call returns."""
    try:
        return action(), OK, ""
    except Refused as refused:
        return None, refused.code, refused.reason


class RulesMachine(RuleBasedStateMachine):
    """Each example run: a new database, a new daemon, the same seed, and a random sequence."""

    databases: SqliteDatabases | PostgresSchemas  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.url = self.databases.new()
        self.daemon = start_daemon(self.url)
        self.stub = self.daemon.stub
        self.rules = read_rules(self.stub)
        self.created: list[int] = []
        FIGURES["examples"] += 1

    def teardown(self) -> None:
        try:
            self.check_everything()
        finally:
            self.daemon.stop()
            self.databases.drop(self.url)

    # -- helpers --

    def call(self, method: str, request):
        """(response or None, code, reason) of a real call."""
        FIGURES["calls"] += 1
        self.last_error = ""
        try:
            return getattr(self.stub, method)(request, timeout=TIMEOUT), OK, ""
        except grpc.RpcError as error:
            code, reason, _ = refusal(error)
            self.last_error = error.details() or ""
            return None, code, reason

    def agree(self, what: str, got: tuple, expected: tuple) -> None:
        """The daemon's status must be the oracle's; figures count the outcomes."""
        FIGURES["steps"] += 1
        FIGURES[f"{what} {expected[1].name} {expected[2]}".rstrip()] += 1
        assert got[1:] == expected[1:], (
            f"{what}: daemon {got[1:]} {self.last_error!r}, model {expected[1:]}"
        )
        assert got[1] not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)

    def etag(self, kind: str, prefix: str, revision: int, pick: int) -> str:
        if kind == "none":
            return ""
        if kind == "current":
            return f"{prefix}{revision}"
        stale = [n for n in range(revision + 2) if n != revision]
        return f"{prefix}{stale[pick % len(stale)]}"

    def pool(self) -> list[int]:
        return [*SEEDED_POOL, *self.created, MISSING_ID]

    def target(self, pick: int, in_use: bool) -> int:
        """A model of the pool; with in_use, one a setting selects (what protection guards)."""
        used = sorted({*self.rules.overrides.values(), *self.rules.globals.values()})
        pool = used if in_use and used else self.pool()
        return pool[pick % len(pool)]

    # -- writes --

    @rule(
        slot=st.sampled_from((*SLOTS, *SLOTS, "no_such_slot")),
        pick=st.integers(0, 1000),
        fitting=st.sampled_from((True, True, True, False)),
        by_name=st.booleans(),
        account=st.sampled_from(ACCOUNTS),
        scope=st.sampled_from(SCOPES),
        etag=st.sampled_from(ETAGS),
        validate_only=st.sampled_from((False, False, False, True)),
    )
    def set_model(self, slot, pick, fitting, by_name, account, scope, etag, validate_only):
        pool = self.pool()
        if fitting and slot in self.rules.slots:
            want = self.rules.slots[slot]
            pool = [
                m.id
                for m in self.rules.models.values()
                if m.id in pool and (m.provider, m.type) == (want.provider, want.type)
            ] or pool
        model_id = pool[pick % len(pool)]
        known = self.rules.models.get(model_id)
        request = api.SetModelRequest(slot=slot, validate_only=validate_only)
        ref: int | str = model_id
        if by_name and known is not None:
            ref = request.model_name = known.names[pick % len(known.names)]
        else:
            request.model_id = model_id
        request.scope, request.account_id = {
            "global": (pb.SCOPE_GLOBAL, ""),
            "account": (pb.SCOPE_ACCOUNT, account),
            "account-unset": (pb.SCOPE_UNSPECIFIED, account),
            "no-scope": (pb.SCOPE_UNSPECIFIED, ""),
            "global+acct": (pb.SCOPE_GLOBAL, account),
            "account-empty": (pb.SCOPE_ACCOUNT, ""),
        }[scope]
        if request.account_id:
            current = self.rules.account_revisions.get(account, 0)
            request.etag = self.etag(etag, "a", current, pick)
        else:
            request.etag = self.etag(etag, "g", self.rules.global_revision, pick)
        before = self.rules.revision
        expected = predict(
            lambda: self.rules.set_model(
                slot, ref, request.account_id, request.scope, request.etag, validate_only
            )
        )
        got = self.call("SetModel", request)
        no_op = (
            expected[0] is not None
            and expected[0][1] == before
            and ("validate_only" if validate_only else "no-op")
        )
        self.agree(f"SetModel{' ' + no_op if no_op else ''}", got, expected)
        if got[0] is not None:
            reply = got[0]
            assert (reply.setting.slot, reply.setting.model.id, reply.revision, reply.etag) == (
                slot,
                *expected[0],
            ), request

    @rule(
        slot=st.sampled_from(SLOTS),
        account=st.sampled_from((*ACCOUNTS, "")),
        etag=st.sampled_from(ETAGS),
        pick=st.integers(0, 1000),
        existing=st.booleans(),
    )
    def clear(self, slot, account, etag, pick, existing):
        """ClearAccountModel with an account, ClearGlobalModel without."""
        if existing and account and self.rules.overrides:
            # Half the time an override that exists, so that clears do succeed.
            held = sorted(self.rules.overrides)
            account, slot = held[pick % len(held)]
        if account:
            tag = self.etag(etag, "a", self.rules.account_revisions.get(account, 0), pick)
            method, request = (
                "ClearAccountModel",
                api.ClearAccountModelRequest(account_id=account, slot=slot, etag=tag),
            )
        else:
            tag = self.etag(etag, "g", self.rules.global_revision, pick)
            method, request = "ClearGlobalModel", api.ClearGlobalModelRequest(slot=slot, etag=tag)
        scope = pb.SCOPE_ACCOUNT if account else pb.SCOPE_GLOBAL
        expected = predict(lambda: self.rules.clear(scope, slot, account, tag))
        got = self.call(method, request)
        self.agree(method, got, expected)
        if got[0] is not None:
            assert (got[0].revision, got[0].etag) == expected[0]

    @rule(pick=st.integers(0, 1000), active=st.booleans(), in_use=st.booleans())
    def update_model(self, pick, active, in_use):
        model_id = self.target(pick, in_use)
        expected = predict(lambda: self.rules.set_active(model_id, active))
        got = self.call(
            "UpdateModel",
            api.UpdateModelRequest(
                model=pb.Model(id=model_id, is_active=active),
                update_mask=FieldMask(paths=["is_active"]),
            ),
        )
        self.agree("UpdateModel", got, expected)
        if got[0] is not None:
            assert (got[0].model.id, got[0].model.is_active) == (model_id, active)
            assert got[0].revision == self.rules.revision

    @precondition(lambda self: len(self.created) < 6)
    @rule(pick=st.integers(0, 1000), active=st.booleans())
    def create_model(self, pick, active):
        # Mostly a name that is free; one in four a name that is taken (or free again).
        free = [n for n in NEW_MODELS if not self.rules.name_holder((n[0],))]
        name, provider, type_ = (
            free[pick % len(free)] if free and pick % 4 else (NEW_MODELS[pick % len(NEW_MODELS)])
        )
        expected = predict(lambda: self.rules.create_model(name, provider, type_, active))
        got = self.call(
            "CreateModel",
            api.CreateModelRequest(
                model=pb.Model(
                    model_name=name, provider=provider, model_type=type_, is_active=active
                )
            ),
        )
        self.agree("CreateModel", got, expected)
        if got[0] is not None:
            assert (got[0].model.id, got[0].revision) == (expected[0], self.rules.revision)
            self.created.append(got[0].model.id)

    @rule(pick=st.integers(0, 1000), in_use=st.booleans())
    def delete_model(self, pick, in_use):
        model_id = self.target(pick, in_use)
        expected = predict(lambda: self.rules.delete_model(model_id))
        got = self.call("DeleteModel", api.DeleteModelRequest(model_id=model_id))
        self.agree("DeleteModel", got, expected)
        if got[0] is not None:
            assert got[0].revision == self.rules.revision

    @rule(
        back=st.integers(0, 13),
        force=st.booleans(),
        validate_only=st.sampled_from((False, False, False, True)),
    )
    def revert_change(self, back, force, validate_only):
        # Mostly one of the last six changes; sometimes the seed or a revision not committed yet.
        recent = sorted(self.rules.changes)[-6:]
        if back < 12 and recent:
            revision = recent[-1 - back % len(recent)]
        else:
            revision = 1 if back == 12 else self.rules.revision + 1
        reverted = self.rules.changes.get(revision)
        FIGURES[
            f"RevertChange of {pb.ChangeKind.Name(reverted.kind) if reverted else 'none'}"
            f"{' forced' if force else ''}"
        ] += 1
        before = self.rules.revision
        expected = predict(lambda: self.rules.revert(revision, force, validate_only))
        got = self.call(
            "RevertChange",
            api.RevertChangeRequest(revision=revision, force=force, validate_only=validate_only),
        )
        self.agree("RevertChange", got, expected)
        if got[0] is None:
            return
        reply, change = got[0], expected[0]
        if change is None:
            assert not reply.HasField("change") and reply.revision == before
            return
        assert reply.revision == self.rules.revision
        self.same_change(reply.change, change)

    # -- reads --

    @rule(
        what=st.sampled_from(("resolve", "resolve", "globals", "usage", "head")),
        account=st.sampled_from(ACCOUNTS),
        pick=st.integers(0, 1000),
    )
    def read(self, what, account, pick):
        """ResolveForAccount, GetGlobalSettings, GetModelUsage or the newest change."""
        if what == "head":
            self.revision_and_head_of_the_audit_trail()
        elif what == "resolve":
            self.resolve_for_account(account)
        elif what == "globals":
            self.get_global_settings()
        else:
            pool = self.pool()
            self.check_usage(pool[pick % len(pool)])

    def resolve_for_account(self, account):
        got = self.call("ResolveForAccount", api.ResolveForAccountRequest(account_id=account))
        self.agree("ResolveForAccount", got, (None, OK, ""))
        reply = got[0]
        seen = [
            (
                s.slot,
                s.model.id,
                s.source,
                s.skipped_override.id if s.HasField("skipped_override") else 0,
            )
            for s in reply.slots
        ]
        assert seen == self.rules.resolve(account), account
        assert all(s.model.is_active for s in reply.slots)
        assert (reply.revision, reply.etag) == (
            self.rules.revision,
            self.rules.account_etag(account),
        )

    def get_global_settings(self):
        got = self.call("GetGlobalSettings", api.GetGlobalSettingsRequest())
        self.agree("GetGlobalSettings", got, (None, OK, ""))
        reply = got[0]
        seen = {
            s.slot: (s.model.id if s.HasField("model") else 0, s.default_model.id)
            for s in reply.slots
        }
        assert seen == {
            name: (self.rules.globals.get(name, 0), slot.default)
            for name, slot in self.rules.slots.items()
        }
        assert (reply.revision, reply.etag) == (self.rules.revision, self.rules.global_etag())

    def check_usage(self, model_id: int) -> None:
        got = self.call("GetModelUsage", api.GetModelUsageRequest(model_id=model_id))
        exists = model_id in self.rules.models
        self.agree(
            "GetModelUsage", got, (None, OK, "") if exists else (None, NOT_FOUND, "MODEL_NOT_FOUND")
        )
        if exists:
            reply = got[0]
            globals_, defaults, accounts, successor_of = self.rules.usage(model_id)
            assert (
                list(reply.global_slots),
                list(reply.default_slots),
                reply.account_override_count,
                list(reply.account_ids),
                sorted(reply.successor_of),
                reply.revision,
            ) == (
                globals_,
                defaults,
                sum(1 for m in self.rules.overrides.values() if m == model_id),
                accounts,
                successor_of,
                self.rules.revision,
            ), model_id

    def same_change(self, got: pb.Change, want: Change) -> None:
        assert (got.revision, got.kind, got.reverted_revision) == (
            want.revision,
            want.kind,
            want.reverted,
        ), got
        if want.kind == pb.CHANGE_KIND_SETTING:
            assert (
                got.scope,
                got.slot,
                got.account_id,
                got.before.model_id,
                got.after.model_id,
            ) == (want.scope, want.slot, want.account, want.before, want.after), got
        else:
            assert got.model_id == want.model_id, got
            if want.kind == pb.CHANGE_KIND_MODEL_UPDATED:
                assert isinstance(want.before, Model) and isinstance(want.after, Model)
                assert list(got.changed_fields.paths) == ["is_active"], got
                assert (got.before.model.is_active, got.after.model.is_active) == (
                    want.before.active,
                    want.after.active,
                ), got

    def revision_and_head_of_the_audit_trail(self):
        got = self.call("ListChanges", api.ListChangesRequest(page_size=1))
        self.agree("ListChanges", got, (None, OK, ""))
        head = got[0].changes[0]
        assert head.revision == self.rules.revision
        if head.revision > 1:
            self.same_change(head, self.rules.changes[head.revision])

    def check_everything(self):
        """Every read at once; also what the teardown runs, so a sequence ends verified."""
        self.get_global_settings()
        for account in ACCOUNTS:
            self.resolve_for_account(account)
        for model_id in self.pool():
            self.check_usage(model_id)
        # One change per revision: the audit trail is exactly 1..revision, newest first.
        revisions, token = [], ""
        while True:
            page = self.stub.ListChanges(
                api.ListChangesRequest(page_size=1000, page_token=token), timeout=TIMEOUT
            )
            for change in page.changes:
                revisions.append(change.revision)
                if change.revision > 1:
                    self.same_change(change, self.rules.changes[change.revision])
            token = page.next_page_token
            if not token:
                break
        assert revisions == list(range(self.rules.revision, 0, -1))


# -- the tests -----------------------------------------------------------------------------------


class SqliteDatabases:
    """A new SQLite file per sequence, removed after it."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def new(self) -> str:
        return f"sqlite:///{self.where}/rules-{uuid.uuid4().hex[:8]}.db"

    def drop(self, url: str) -> None:
        path = Path(url.removeprefix("sqlite:///"))
        for leftover in path.parent.glob(path.name + "*"):  # the file, its -wal and -shm
            leftover.unlink(missing_ok=True)


class PostgresSchemas:
    """A new PostgreSQL schema per sequence, dropped after it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.schemas: dict[str, str] = {}  # url -> schema

    def new(self) -> str:
        schema = f"rules{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        options = "options=" + quote(f"-csearch_path={schema}")
        url = _with_database(self.base, urlsplit(self.base).path.lstrip("/"), options)
        self.schemas[url] = schema
        return url

    def drop(self, url: str) -> None:
        schema = self.schemas.pop(url)
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def scratch(tmp_path):
    """A tmpfs directory when there is one: this test is about the rules, not durability, and
    a fsync per write on a busy disk would spend its time budget on waiting."""
    shm = Path("/dev/shm")
    where = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def machine_settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples * (20 if SOAK else 1),
        stateful_step_count=steps * (2 if SOAK else 1),
        deadline=None,
        database=None,
        derandomize=not SOAK,
        suppress_health_check=list(HealthCheck),
    )


def run_machine(databases, examples: int, steps: int) -> None:
    FIGURES.clear()
    machine = type("Machine", (RulesMachine,), {"databases": databases})
    run_state_machine_as_test(machine, settings=machine_settings(examples, steps))
    outcomes = sorted((k, v) for k, v in FIGURES.items() if k not in ("examples", "calls", "steps"))
    print(
        f"\nrules model: {FIGURES['examples']} sequences, {FIGURES['calls']} calls, every status "
        "and answer as the model predicted"
    )
    for key, count in outcomes:
        print(f"  {count:6d}  {key}")
    assert FIGURES["examples"] >= examples  # the machine really ran


@pytest.mark.soak
def test_rules_model_sqlite(scratch):
    run_machine(SqliteDatabases(scratch), examples=20, steps=60)


@pytest.mark.soak
def test_rules_model_postgres(postgres_database):
    run_machine(PostgresSchemas(postgres_database), examples=6, steps=60)


def test_a_forced_revert_of_an_undone_deletion_restores_the_deleted_fields(scratch):
    """Found by the soak run (the model was wrong): a model deleted inactive, brought back by
    reverting the deletion, then activated; forcing the deletion's revert again records an
    update that makes it inactive, as it was when deleted."""
    machine = type("Machine", (RulesMachine,), {"databases": SqliteDatabases(scratch)})()
    try:
        machine.create_model(pick=1, active=False)  # revision 2, the new model inactive
        created = machine.created[0]
        machine.delete_model(pick=len(SEEDED_POOL), in_use=False)  # 3
        machine.revert_change(back=0, force=False, validate_only=False)  # 4: back, inactive
        machine.update_model(pick=len(SEEDED_POOL), active=True, in_use=False)  # 5: active
        machine.revert_change(back=2, force=False, validate_only=False)  # 3 again: CHANGED_SINCE
        machine.revert_change(back=2, force=True, validate_only=False)  # 6: inactive again
        assert machine.rules.revision == 6
        change = machine.rules.changes[6]
        assert (change.kind, change.model_id, change.reverted) == (
            pb.CHANGE_KIND_MODEL_UPDATED,
            created,
            3,
        )
        assert not machine.rules.models[created].active
    finally:
        machine.teardown()  # every read and the whole audit trail, compared with the model
