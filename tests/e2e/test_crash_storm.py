"""Crash consistency, continuously: a write storm, SIGKILLs at random moments, then proof.

Several clients (threads, a channel each) mix every write RPC against a real `modelconfigd`
while the test kills it with SIGKILL at seeded random moments and restarts it on the same
database. Afterwards: revisions 1..N hold one change each; every acknowledged write holds in the
state at its revision and, unless it changed nothing, is the change recorded there; and
replaying the audit trail (ListChanges, with the overrides WatchChanges keeps beside imports and
retirements) into a fresh daemon on an empty database records the same changes at the same
revisions and ends in the same configuration (ExportConfiguration). Calls cut by a kill may fail
only UNAVAILABLE or DEADLINE_EXCEEDED, and only around a kill; every other failure is a
deliberate refusal carrying an ErrorInfo.

MODELCONFIG_CRASH_SEED=<n> replays a run's schedule (interleavings still vary).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import grpc
import psycopg
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2

from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import model_config_service_pb2_grpc as api_grpc
from modelconfig.v1 import resources_pb2 as pb

from ..conftest import SOAK
from .process_helpers import free_port
from .secure_helpers import refusal

KILLS = 50 if SOAK else 4
WRITERS = 4
CALL_TIMEOUT = 15.0
START_TIMEOUT = 120.0
# How long after a restart a client may still see UNAVAILABLE: its channel's reconnect backoff
# (capped at 0.5 s below) plus a busy machine's scheduling.
RECONNECT_SLACK = 5.0
CUT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.FAILED_PRECONDITION,
}
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
PRICES = ["0.1", "0.25", "0.6", "1.5", "2", "3", "10"]
SEED_SLOTS = ("openai_model", "dalle_model", "runware_model", "anthropic_model")
MODEL_FIELDS = (
    "model_name", "display_name", "provider", "model_type", "is_active",
    "input_price_per_1m_tokens", "output_price_per_1m_tokens", "context_window",
)


def _stub(address: str, tag: str) -> api_grpc.ModelConfigServiceStub:
    channel = grpc.insecure_channel(address, options=[*CHANNEL_OPTIONS, ("test.tag", tag)])
    return api_grpc.ModelConfigServiceStub(channel)


def _same_value(name: str, a: Any, b: Any) -> bool:
    if name.endswith("_tokens") or name == "price_per_image":
        return (Decimal(a) if a else None) == (Decimal(b) if b else None)
    return a == b


def _model_holds(model: pb.Model, asked: dict[str, Any]) -> bool:
    return all(_same_value(k, getattr(model, k), v) for k, v in asked.items())


# -- the storm ---------------------------------------------------------------------------------


@dataclass
class Ack:
    """An acknowledged write: what it asked for and the revision its response carried."""

    op: str
    revision: int
    asked: dict[str, Any]
    response: Any = None


@dataclass
class Tally:
    acks: list[Ack] = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)
    cut: list[tuple[float, float, grpc.StatusCode, str]] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Writer(threading.Thread):
    """One client: picks a write at random, makes it, records the outcome.

    ApplyConfiguration is left out: its change records which models, slots and settings it
    changed but not their values, so no replay of the trail could reproduce it.
    """

    WEIGHTS: ClassVar[dict[str, int]] = {
        "set_account": 25, "set_global": 8, "clear_account": 8, "clear_global": 3,
        "create_model": 8, "update_model": 10, "delete_model": 5, "create_slot": 2,
        "update_slot": 5, "import_overrides": 8, "revert": 8, "retire": 5,
    }

    def __init__(self, number: int, seed: int, address: str, tally: Tally, stop: threading.Event):
        super().__init__(name=f"writer-{number}", daemon=True)
        self.number, self.rnd = number, random.Random(seed * 1000 + number)
        self.stub = _stub(address, f"writer-{number}")
        self.tally, self.stop = tally, stop
        self.made = 0
        self.prefix = f"storm{seed % 100000}w{number}"

    def run(self) -> None:
        ops, weights = list(self.WEIGHTS), list(self.WEIGHTS.values())
        while not self.stop.is_set():
            op = self.rnd.choices(ops, weights)[0]
            started = time.monotonic()
            try:
                ack = getattr(self, op)()
            except grpc.RpcError as error:
                code, reason, _ = refusal(error)
                with self.tally.lock:
                    if code in CUT:
                        self.tally.cut.append((started, time.monotonic(), code, op))
                    elif code in REFUSALS and reason:
                        self.tally.refused[code.name] += 1
                    else:
                        self.tally.wrong.append(f"{op}: {code} {reason} {error.details()}")
                if code in CUT:
                    time.sleep(0.1)  # the daemon is down: do not spin
                continue
            except Exception as exc:  # a bug of this test: reported, never swallowed
                with self.tally.lock:
                    self.tally.wrong.append(f"{op}: {exc!r}")
                continue
            if ack is not None:
                with self.tally.lock:
                    self.tally.acks.append(ack)

    # -- reads the writes are chosen from ------------------------------------------------------

    def _models(self) -> list[pb.Model]:
        request = api.ListModelsRequest(page_size=1000)
        return list(self.stub.ListModels(request, timeout=CALL_TIMEOUT).models)

    def _slots(self) -> list[pb.Slot]:
        return list(self.stub.ListSlots(api.ListSlotsRequest(), timeout=CALL_TIMEOUT).slots)

    def _fitting(self, slot: pb.Slot, models: list[pb.Model], active: bool = False):
        return [
            m for m in models
            if m.provider == slot.required_provider and m.model_type == slot.required_model_type
            and (m.is_active or not active)
        ]

    def _storm_models(self) -> list[pb.Model]:
        return [m for m in self._models() if m.model_name.startswith("storm")]

    def _account(self) -> str:
        return f"acct-{self.rnd.randrange(40)}"

    # -- the writes ----------------------------------------------------------------------------

    def set_account(self) -> Ack:
        slot = self.rnd.choice(self._slots())
        model = self.rnd.choice(self._fitting(slot, self._models()))
        account = self._account()
        etag = ""
        if self.rnd.random() < 0.3:
            etag = self.stub.ResolveForAccount(
                api.ResolveForAccountRequest(account_id=account, slots=[slot.name]),
                timeout=CALL_TIMEOUT,
            ).etag
        reply = self.stub.SetModel(api.SetModelRequest(
            slot=slot.name, model_id=model.id, account_id=account, etag=etag,
            scope=pb.SCOPE_ACCOUNT), timeout=CALL_TIMEOUT)
        return Ack("setting", reply.revision, {
            "scope": pb.SCOPE_ACCOUNT, "slot": slot.name, "account_id": account,
            "model_id": model.id, "method": "SetModel"})

    def set_global(self) -> Ack:
        slot = self.rnd.choice(self._slots())
        model = self.rnd.choice(self._fitting(slot, self._models()))
        etag = ""
        if self.rnd.random() < 0.5:
            etag = self.stub.GetGlobalSettings(
                api.GetGlobalSettingsRequest(), timeout=CALL_TIMEOUT).etag
        reply = self.stub.SetModel(api.SetModelRequest(
            slot=slot.name, model_id=model.id, etag=etag, scope=pb.SCOPE_GLOBAL),
            timeout=CALL_TIMEOUT)
        return Ack("setting", reply.revision, {
            "scope": pb.SCOPE_GLOBAL, "slot": slot.name, "account_id": "",
            "model_id": model.id, "method": "SetModel"})

    def clear_account(self) -> Ack:
        slot = self.rnd.choice(self._slots())
        account = self._account()
        reply = self.stub.ClearAccountModel(
            api.ClearAccountModelRequest(account_id=account, slot=slot.name),
            timeout=CALL_TIMEOUT)
        return Ack("setting", reply.revision, {
            "scope": pb.SCOPE_ACCOUNT, "slot": slot.name, "account_id": account,
            "model_id": 0, "method": "ClearAccountModel"})

    def clear_global(self) -> Ack:
        slot = self.rnd.choice(self._slots())
        reply = self.stub.ClearGlobalModel(
            api.ClearGlobalModelRequest(slot=slot.name), timeout=CALL_TIMEOUT)
        return Ack("setting", reply.revision, {
            "scope": pb.SCOPE_GLOBAL, "slot": slot.name, "account_id": "",
            "model_id": 0, "method": "ClearGlobalModel"})

    def create_model(self) -> Ack:
        self.made += 1
        asked = {
            "model_name": f"{self.prefix}-{self.made}",
            "display_name": f"Storm {self.number}.{self.made}",
            "provider": self.rnd.choice(["openai", "anthropic"]),
            "model_type": pb.MODEL_TYPE_TEXT,
            "is_active": self.rnd.random() < 0.8,
            "input_price_per_1m_tokens": self.rnd.choice(PRICES),
            "output_price_per_1m_tokens": self.rnd.choice(PRICES),
            "context_window": self.rnd.choice([8192, 128000, 200000]),
        }
        reply = self.stub.CreateModel(
            api.CreateModelRequest(model=pb.Model(**asked)), timeout=CALL_TIMEOUT)
        return Ack("create_model", reply.revision, {**asked, "model_id": reply.model.id})

    def update_model(self) -> Ack | None:
        models = self._storm_models()
        if not models:
            return None
        model = self.rnd.choice(models)
        if self.rnd.random() < 0.5:
            asked: dict[str, Any] = {"is_active": not model.is_active}
        else:
            asked = {
                "input_price_per_1m_tokens": self.rnd.choice(PRICES),
                "output_price_per_1m_tokens": self.rnd.choice(PRICES),
            }
        reply = self.stub.UpdateModel(api.UpdateModelRequest(
            model=pb.Model(id=model.id, **asked),
            update_mask=field_mask_pb2.FieldMask(paths=list(asked))), timeout=CALL_TIMEOUT)
        return Ack("update_model", reply.revision, {**asked, "model_id": model.id})

    def delete_model(self) -> Ack | None:
        models = self._storm_models()
        if not models:
            return None
        model = self.rnd.choice(models)
        reply = self.stub.DeleteModel(
            api.DeleteModelRequest(model_id=model.id), timeout=CALL_TIMEOUT)
        return Ack("delete_model", reply.revision, {"model_id": model.id})

    def create_slot(self) -> Ack | None:
        slots = self._slots()
        if len(slots) >= len(SEED_SLOTS) + 8:
            return None
        self.made += 1
        default = self.rnd.choice([
            m for m in self._models()
            if m.provider == "openai" and m.model_type == pb.MODEL_TYPE_TEXT and m.is_active])
        asked = {
            "name": f"{self.prefix}_{self.made}", "display_name": f"Storm slot {self.made}",
            "required_provider": "openai", "required_model_type": pb.MODEL_TYPE_TEXT,
            "default_model_id": default.id,
        }
        reply = self.stub.CreateSlot(
            api.CreateSlotRequest(slot=pb.Slot(**asked)), timeout=CALL_TIMEOUT)
        return Ack("create_slot", reply.revision, asked)

    def update_slot(self) -> Ack:
        slot = self.rnd.choice(self._slots())
        if self.rnd.random() < 0.5:
            asked: dict[str, Any] = {"display_name": f"Renamed {self.rnd.randrange(1000)}"}
        else:
            model = self.rnd.choice(self._fitting(slot, self._models(), active=True))
            asked = {"default_model_id": model.id}
        reply = self.stub.UpdateSlot(api.UpdateSlotRequest(
            slot=pb.Slot(name=slot.name, **asked),
            update_mask=field_mask_pb2.FieldMask(paths=list(asked))), timeout=CALL_TIMEOUT)
        return Ack("update_slot", reply.revision, {**asked, "name": slot.name})

    def import_overrides(self) -> Ack:
        slots, models = self._slots(), self._models()
        rows: dict[tuple[str, str], int] = {}
        for _ in range(self.rnd.randint(1, 30)):
            slot = self.rnd.choice(slots)
            account = f"imp-{self.rnd.randrange(60)}" if self.rnd.random() < 0.7 else (
                self._account())
            rows[(account, slot.name)] = self.rnd.choice(self._fitting(slot, models)).id
        records = [
            api.OverrideRecord(line=i + 1, account_id=a, slot=s, model_id=m)
            for i, ((a, s), m) in enumerate(rows.items())
        ]
        cut = self.rnd.randint(0, len(records))
        chunks = [api.ImportOverridesRequest(rows=part) for part in (records[:cut], records[cut:])]
        reply = self.stub.ImportOverrides(iter(chunks), timeout=CALL_TIMEOUT)
        return Ack("import", reply.revision, {"rows": rows}, reply)

    def revert(self) -> Ack | None:
        with self.tally.lock:
            recent = [a.revision for a in self.tally.acks[-60:] if a.op != "revert"]
        if not recent:
            return None
        revision = self.rnd.choice(recent)
        reply = self.stub.RevertChange(api.RevertChangeRequest(
            revision=revision, force=self.rnd.random() < 0.3), timeout=CALL_TIMEOUT)
        if not reply.HasField("change"):
            return None  # everything already held its earlier value: nothing recorded
        return Ack("revert", reply.revision, {"reverted_revision": revision}, reply.change)

    def retire(self) -> Ack | None:
        models = self._models()
        storm = [m for m in models if m.model_name.startswith("storm")]
        if not storm:
            return None
        model = self.rnd.choice(storm)
        successors = [
            m for m in models
            if m.id != model.id and m.provider == model.provider
            and m.model_type == model.model_type and m.is_active
        ]
        successor = self.rnd.choice(successors)
        reply = self.stub.RetireModel(
            api.RetireModelRequest(model_id=model.id, successor_id=successor.id),
            timeout=CALL_TIMEOUT)
        return Ack("retire", reply.revision,
                   {"model_id": model.id, "successor_id": successor.id}, reply)


# -- reading what a daemon recorded ------------------------------------------------------------


def _all_changes(stub) -> list[pb.Change]:
    changes: list[pb.Change] = []
    token = ""
    while True:
        page = stub.ListChanges(
            api.ListChangesRequest(page_size=1000, page_token=token), timeout=60)
        changes.extend(page.changes)
        token = page.next_page_token
        if not token:
            return sorted(changes, key=lambda c: c.revision)


def _feed(stub, upto: int) -> tuple[list[pb.Change], dict[int, set[tuple[str, str, int]]]]:
    """Every change after the seed as WatchChanges replays it, with the overrides kept beside
    imports, retirements and their reverts, by revision."""
    changes: list[pb.Change] = []
    overrides: dict[int, set[tuple[str, str, int]]] = {}
    call = stub.WatchChanges(api.WatchChangesRequest(start_revision=1), timeout=120)
    try:
        for part in call:
            changes.extend(part.changes)
            for o in part.overrides:
                overrides.setdefault(o.revision, set()).add((o.account_id, o.slot, o.model_id))
            if part.revision >= upto and not part.more:
                break
    finally:
        call.cancel()
    return changes, overrides


def _export(stub) -> tuple[int, api.Configuration, list[tuple[str, str, int]]]:
    revision, configuration, overrides = 0, api.Configuration(), []
    for part in stub.ExportConfiguration(api.ExportConfigurationRequest(), timeout=60):
        revision = part.revision
        if part.HasField("configuration"):
            configuration = part.configuration
        overrides += [(o.account_id, o.slot, o.model_id) for o in part.overrides]
    return revision, configuration, overrides


def _recorded(change: pb.Change) -> tuple:
    """What a change recorded, without who, when and through which call."""
    return (
        change.revision, change.kind, change.scope, change.slot, change.account_id,
        change.model_id, change.before.SerializeToString(deterministic=True),
        change.after.SerializeToString(deterministic=True), tuple(change.changed_fields.paths),
        change.import_rows, change.import_accounts,
    )


# -- replay ------------------------------------------------------------------------------------


@dataclass
class Replay:
    """Applies recorded changes to a daemon on an empty database, one write per change."""

    stub: Any
    overrides: dict[int, set[tuple[str, str, int]]]
    by: Counter = field(default_factory=Counter)

    def apply(self, c: pb.Change) -> int:
        """Apply change `c`; returns the revision the write committed."""
        kind = c.kind
        if c.reverted_revision and kind in (pb.CHANGE_KIND_IMPORT, pb.CHANGE_KIND_MODEL_RETIRED,
                                            pb.CHANGE_KIND_MODEL_CREATED):
            # No public write sets what these recorded: an import's revert clears overrides
            # (ImportOverrides only sets), a retirement's revert moves settings back and
            # reactivates, a deletion's revert recreates the model under its old id (CreateModel
            # allocates a new one). The same revert on the same state is the replay; the change
            # it records is compared with the original afterwards.
            self.by[f"RevertChange({pb.ChangeKind.Name(kind)})"] += 1
            return self.stub.RevertChange(api.RevertChangeRequest(
                revision=c.reverted_revision, force=True), timeout=60).revision
        if kind == pb.CHANGE_KIND_SETTING:
            return self._setting(c)
        if kind == pb.CHANGE_KIND_MODEL_CREATED:
            self.by["CreateModel"] += 1
            model = pb.Model()
            model.CopyFrom(c.after.model)
            model.ClearField("id")
            model.ClearField("label")
            reply = self.stub.CreateModel(api.CreateModelRequest(model=model), timeout=60)
            assert reply.model.id == c.model_id, (c, reply.model.id)
            return reply.revision
        if kind == pb.CHANGE_KIND_MODEL_UPDATED:
            self.by["UpdateModel"] += 1
            model = pb.Model()
            model.CopyFrom(c.after.model)
            model.id = c.model_id
            return self.stub.UpdateModel(api.UpdateModelRequest(
                model=model, update_mask=c.changed_fields), timeout=60).revision
        if kind == pb.CHANGE_KIND_MODEL_DELETED:
            self.by["DeleteModel"] += 1
            return self.stub.DeleteModel(
                api.DeleteModelRequest(model_id=c.model_id), timeout=60).revision
        if kind == pb.CHANGE_KIND_SLOT_CREATED:
            self.by["CreateSlot"] += 1
            slot = pb.Slot()
            slot.CopyFrom(c.after.slot)
            slot.name = c.slot
            return self.stub.CreateSlot(api.CreateSlotRequest(slot=slot), timeout=60).revision
        if kind == pb.CHANGE_KIND_SLOT_UPDATED:
            self.by["UpdateSlot"] += 1
            slot = pb.Slot()
            slot.CopyFrom(c.after.slot)
            slot.name = c.slot
            return self.stub.UpdateSlot(api.UpdateSlotRequest(
                slot=slot, update_mask=c.changed_fields), timeout=60).revision
        if kind == pb.CHANGE_KIND_IMPORT:
            rows = sorted(self.overrides.get(c.revision, set()))
            assert rows and all(m for _, _, m in rows), c
            self.by["ImportOverrides"] += 1
            records = [api.OverrideRecord(line=i + 1, account_id=a, slot=s, model_id=m)
                       for i, (a, s, m) in enumerate(rows)]
            return self.stub.ImportOverrides(
                iter([api.ImportOverridesRequest(rows=records)]), timeout=60).revision
        if kind == pb.CHANGE_KIND_MODEL_RETIRED:
            # The change records the model, its successor (after.retirement.model_id) and every
            # setting moved; the overrides moved are kept beside it and compared afterwards.
            self.by["RetireModel"] += 1
            return self.stub.RetireModel(api.RetireModelRequest(
                model_id=c.model_id, successor_id=c.after.retirement.model_id),
                timeout=60).revision
        raise AssertionError(f"the storm made no {pb.ChangeKind.Name(kind)} change: {c}")

    def _setting(self, c: pb.Change) -> int:
        model_id = c.after.model_id
        if c.scope == pb.SCOPE_GLOBAL:
            if model_id:
                self.by["SetModel(global)"] += 1
                return self.stub.SetModel(api.SetModelRequest(
                    slot=c.slot, model_id=model_id, scope=pb.SCOPE_GLOBAL), timeout=60).revision
            self.by["ClearGlobalModel"] += 1
            return self.stub.ClearGlobalModel(
                api.ClearGlobalModelRequest(slot=c.slot), timeout=60).revision
        if model_id:
            self.by["SetModel(account)"] += 1
            return self.stub.SetModel(api.SetModelRequest(
                slot=c.slot, model_id=model_id, account_id=c.account_id,
                scope=pb.SCOPE_ACCOUNT), timeout=60).revision
        self.by["ClearAccountModel"] += 1
        return self.stub.ClearAccountModel(api.ClearAccountModelRequest(
            account_id=c.account_id, slot=c.slot), timeout=60).revision


# -- checking one acknowledged write against the state at its revision -------------------------


def _matches(ack: Ack, c: pb.Change) -> bool:
    """Whether change `c` is the change `ack` asked for (its audit row)."""
    a = ack.asked
    if ack.op == "setting":
        return (c.kind == pb.CHANGE_KIND_SETTING and c.method == a["method"]
                and (c.scope, c.slot, c.account_id, c.after.model_id)
                == (a["scope"], a["slot"], a["account_id"], a["model_id"]))
    if ack.op == "create_model":
        fields = {k: v for k, v in a.items() if k != "model_id"}
        return (c.kind == pb.CHANGE_KIND_MODEL_CREATED and c.model_id == a["model_id"]
                and _model_holds(c.after.model, fields))
    if ack.op == "update_model":
        changed = [k for k in a if k in c.changed_fields.paths]
        return (c.kind == pb.CHANGE_KIND_MODEL_UPDATED and c.method == "UpdateModel"
                and c.model_id == a["model_id"] and bool(changed)
                and _model_holds(c.after.model, {k: a[k] for k in changed}))
    if ack.op == "delete_model":
        return (c.kind, c.model_id, c.method) == (
            pb.CHANGE_KIND_MODEL_DELETED, a["model_id"], "DeleteModel")
    if ack.op == "create_slot":
        return (c.kind == pb.CHANGE_KIND_SLOT_CREATED and c.slot == a["name"]
                and c.after.slot.default_model_id == a["default_model_id"])
    if ack.op == "update_slot":
        changed = [k for k in a if k in c.changed_fields.paths]
        return (c.kind == pb.CHANGE_KIND_SLOT_UPDATED and c.method == "UpdateSlot"
                and c.slot == a["name"] and bool(changed)
                and all(getattr(c.after.slot, k) == a[k] for k in changed))
    if ack.op == "import":
        return (c.kind == pb.CHANGE_KIND_IMPORT and c.method == "ImportOverrides"
                and c.import_rows == ack.response.changed_rows > 0)
    if ack.op == "revert":
        return (c.method == "RevertChange" and c.reverted_revision == a["reverted_revision"]
                and _recorded(c) == _recorded(ack.response))
    if ack.op == "retire":
        r = ack.response
        return (c.kind == pb.CHANGE_KIND_MODEL_RETIRED and c.method == "RetireModel"
                and c.model_id == a["model_id"] and c.after.retirement.model_id
                == a["successor_id"] and c.import_rows == r.account_overrides
                and list(c.after.retirement.global_slots) == list(r.global_slots)
                and list(c.after.retirement.default_slots) == list(r.default_slots))
    raise AssertionError(ack.op)


def _holds(stub, ack: Ack) -> bool:
    """Whether what `ack` asked for holds in the state `stub`'s daemon is in."""
    a = ack.asked
    if ack.op == "setting":
        if a["scope"] == pb.SCOPE_GLOBAL:
            settings = stub.GetGlobalSettings(api.GetGlobalSettingsRequest(), timeout=60).slots
            got = next(s for s in settings if s.slot == a["slot"])
            return (got.model.id if got.HasField("model") else 0) == a["model_id"]
        return _override(stub, a["account_id"], a["slot"]) == a["model_id"]
    if ack.op in ("create_model", "update_model"):
        fields = {k: v for k, v in a.items() if k != "model_id"}
        model = stub.GetModel(api.GetModelRequest(model_id=a["model_id"]), timeout=60).model
        return _model_holds(model, fields)
    if ack.op == "delete_model":
        try:
            stub.GetModel(api.GetModelRequest(model_id=a["model_id"]), timeout=60)
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.NOT_FOUND
        return False
    if ack.op in ("create_slot", "update_slot"):
        slots = stub.ListSlots(api.ListSlotsRequest(), timeout=60).slots
        slot = next((s for s in slots if s.name == a["name"]), None)
        return slot is not None and all(getattr(slot, k) == v for k, v in a.items())
    if ack.op == "import":
        return all(_override(stub, acct, slot) == m for (acct, slot), m in a["rows"].items())
    if ack.op == "retire":
        model = stub.GetModel(api.GetModelRequest(model_id=a["model_id"]), timeout=60).model
        usage = stub.GetModelUsage(
            api.GetModelUsageRequest(model_id=a["model_id"]), timeout=60)
        # Moved everything or nothing: no setting selects the retired model any more.
        return (model.successor_id == a["successor_id"] and not model.is_active
                and not usage.global_slots and not usage.default_slots
                and usage.account_override_count == 0)
    if ack.op == "revert":
        return True  # checked by _matches: its recorded change equals the response's
    raise AssertionError(ack.op)


def _override(stub, account: str, slot: str) -> int:
    got = stub.ResolveForAccount(
        api.ResolveForAccountRequest(account_id=account, slots=[slot]), timeout=60).slots[0]
    if got.source == pb.SOURCE_ACCOUNT:
        return got.model.id
    return got.skipped_override.id if got.HasField("skipped_override") else 0


# -- the databases -----------------------------------------------------------------------------


def _empty_twin(url: str, tmp_path) -> str:
    """An empty database of the same engine as `url`, for the replay."""
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/replay.db"
    parts = urlsplit(url)
    schema = parse_qs(parts.query)["options"][0].removeprefix("-csearch_path=") + "_replay"
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return urlunsplit((parts.scheme, parts.netloc, parts.path,
                       "options=" + quote(f"-csearch_path={schema}"), ""))


def _restart(daemons, url: str, listen: str):
    """A daemon on `url` and `listen`; when it does not serve, the failure shows where each of
    its threads is (faulthandler, on SIGABRT) and what the PostgreSQL sessions were doing."""
    try:
        # A wide bound: on a starved machine a start's CPU (imports, the snapshot) takes long.
        return daemons.spawn(
            url, listen=listen, env={"PYTHONFAULTHANDLER": "1"}).wait_serving(START_TIMEOUT)
    except AssertionError as failure:
        hung = daemons._started[-1]
        if hung.proc.poll() is None:
            hung.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(Exception):
                hung.proc.wait(timeout=10)
        sessions: list[Any] = []
        if not url.startswith("sqlite"):
            parts = urlsplit(url)
            base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
            with psycopg.connect(base, autocommit=True) as conn:
                sessions = conn.execute(
                    "SELECT pid, datname, state, wait_event_type, wait_event, backend_start, "
                    "left(query, 200) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                ).fetchall()
        raise AssertionError(
            f"{failure}\n--- after SIGABRT ---\n{hung.stderr()}\n--- PostgreSQL sessions ---\n"
            + "\n".join(map(str, sessions))) from None


# -- the test ----------------------------------------------------------------------------------


@pytest.mark.soak
def test_write_storm_through_sigkills_loses_nothing_and_replays_to_the_same_state(
    daemons, database_url, tmp_path
):
    seed = int(os.environ.get("MODELCONFIG_CRASH_SEED", random.randrange(1 << 30)))
    engine = database_url.split(":")[0]
    print(f"\ncrash storm on {engine}: seed {seed} (MODELCONFIG_CRASH_SEED), {KILLS} kills")
    schedule = random.Random(seed)
    listen = f"127.0.0.1:{free_port()}"
    daemon = _restart(daemons, database_url, listen)
    tally, stop = Tally(), threading.Event()
    writers = [Writer(i, seed, listen, tally, stop) for i in range(WRITERS)]
    windows: list[tuple[float, float]] = []
    started = time.monotonic()
    for w in writers:
        w.start()
    try:
        for kill in range(KILLS):
            before = len(tally.acks)
            deadline = time.monotonic() + 60
            # Some writes acknowledged by this incarnation, then a kill at a random moment.
            while len(tally.acks) < before + 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(tally.acks) >= before + 3, daemon.describe(
                f"no writes acknowledged after restart {kill}: {tally.wrong[-5:]}")
            time.sleep(schedule.uniform(0.0, 0.8))
            killed_at = time.monotonic()
            daemon.kill()
            daemon = _restart(daemons, database_url, listen)
            assert daemon.health("") == health_pb2.HealthCheckResponse.SERVING, (
                daemon.describe(f"not SERVING after kill {kill + 1}"))
            windows.append((killed_at, time.monotonic()))
        # Writes after the last restart too, so the last incarnation is checked as well.
        before = len(tally.acks)
        while len(tally.acks) < before + 10 and time.monotonic() < started + 600:
            time.sleep(0.02)
    finally:
        stop.set()
        for w in writers:
            w.join(timeout=60)
    storm_seconds = time.monotonic() - started
    assert not any(w.is_alive() for w in writers), "a writer hangs"

    # Failures: deliberate refusals, or a cut call around a kill; never anything else.
    assert not tally.wrong, f"calls failed with no deliberate status: {tally.wrong[:10]}"
    for begun, ended, code, op in tally.cut:
        assert any(begun <= back + RECONNECT_SLACK and ended >= killed
                   for killed, back in windows), (
            f"{op} failed {code.name} while the daemon was serving "
            f"({begun - started:.2f}s-{ended - started:.2f}s into the storm, kills {windows})")

    stub = _stub(daemon.address, "checker")
    changes = _all_changes(stub)
    final = _export(stub)
    revision = final[0]
    # Revisions 1..N, one change each: no gap (a half-committed write), no duplicate.
    assert [c.revision for c in changes] == list(range(1, revision + 1))
    feed, overrides = _feed(stub, revision)
    assert [_recorded(c) for c in feed] == [_recorded(c) for c in changes[1:]], (
        "WatchChanges replays another trail than ListChanges")
    # The kept overrides are whole: as many as the change counts, of as many accounts.
    for c in changes:
        if c.kind in (pb.CHANGE_KIND_IMPORT, pb.CHANGE_KIND_MODEL_RETIRED):
            rows = overrides.get(c.revision, set())
            assert (len(rows), len({a for a, _, _ in rows})) == (
                c.import_rows, c.import_accounts), f"revision {c.revision} is half kept: {c}"
    acked_at: dict[int, list[Ack]] = {}
    for ack in tally.acks:
        assert 1 <= ack.revision <= revision, f"acknowledged at {ack.revision}, now {revision}"
        acked_at.setdefault(ack.revision, []).append(ack)
    for ack in tally.acks:
        if ack.op == "import":
            kept = overrides.get(ack.revision, set()) if ack.response.changed_rows else set()
            asked = {(a, s, m) for (a, s), m in ack.asked["rows"].items()}
            assert kept <= asked and len(kept) == ack.response.changed_rows, (
                f"import acknowledged at {ack.revision}: asked {asked}, kept {kept}")

    # Replay the trail into a fresh daemon on an empty database of the same engine.
    checked = time.monotonic()
    twin = daemons.start(_empty_twin(database_url, tmp_path))
    assert twin.revision == 1
    replica = _stub(twin.address, "replica")
    replay = Replay(replica, overrides)
    audit_rows = no_ops = 0
    for ack in acked_at.get(1, []):  # changed nothing in the seeded state
        assert _holds(replica, ack) and not _matches(ack, changes[0]), ack
        no_ops += 1
    for c in changes[1:]:
        got = replay.apply(c)
        assert got == c.revision, f"replaying {c} committed revision {got}"
        for ack in acked_at.get(c.revision, []):
            # The acknowledged write holds in the state at its revision ...
            assert _holds(replica, ack), f"acknowledged {ack} does not hold at {c}"
            # ... and is the change recorded there, unless it changed nothing.
            if _matches(ack, c):
                audit_rows += 1
            else:
                assert ack.op in ("setting", "update_model", "update_slot", "import", "retire"), (
                    f"acknowledged {ack} has no audit row: revision {c.revision} holds {c}")
                no_ops += 1
    replayed = _all_changes(replica)
    for original, copy in zip(changes, replayed, strict=True):
        assert _recorded(copy) == _recorded(original), (original, copy)
        if original.reverted_revision and copy.method == "RevertChange":
            assert copy.reverted_revision == original.reverted_revision
    assert _feed(replica, revision)[1] == overrides, "the replay kept other overrides"
    assert _export(replica) == final, "the replayed configuration differs"

    replay_seconds = time.monotonic() - checked
    kinds = Counter(pb.ChangeKind.Name(c.kind).removeprefix("CHANGE_KIND_") for c in changes)
    ops = Counter(a.op for a in tally.acks)
    cut = Counter(f"{op} {code.name}" for _, _, code, op in tally.cut)
    print(
        f"crash storm on {engine}: {KILLS} SIGKILLs in {storm_seconds:.1f}s, "
        f"{len(tally.acks)} acknowledged writes ({audit_rows} with their audit row, {no_ops} "
        f"no-ops holding at their revision) {dict(ops)}; refused {sum(tally.refused.values())} "
        f"{dict(tally.refused)}; cut by kills {len(tally.cut)} {dict(cut)}; "
        f"{revision} revisions, contiguous, one change each {dict(kinds)}; replayed "
        f"{len(changes) - 1} changes into an empty database {dict(replay.by)}: same changes, "
        f"same {len(final[1].models)} models, {len(final[1].slots)} slots, "
        f"{len(final[1].global_settings)} global settings, {len(final[2])} overrides; "
        f"replay and checks {replay_seconds:.1f}s"
    )
