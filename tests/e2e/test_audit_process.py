"""The audit trail survives a SIGKILL of the real `modelconfigd` in the middle of writes.

Every committed write has exactly one change and every change a committed write: after a restart
the trail has no gap and no extra revision, and it agrees exactly with the stored overrides.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from modelconfig import ModelConfigClient, Unavailable
from modelconfig.v1 import resources_pb2 as pb

MODELS = (2, 3)  # gpt-3.5-turbo and gpt-4-turbo-2024-04-09: both fit openai_model


@dataclass(frozen=True)
class Ack:
    account_id: str
    model_id: int
    request_id: str
    revision: int


def test_sigkill_mid_writes_leaves_one_change_per_committed_write(daemons, database_url):
    first = daemons.start(database_url)
    acked: list[Ack] = []
    attempted: list[tuple[str, int, str]] = []
    failures: list[Exception] = []
    enough = threading.Event()

    def write_until_the_daemon_dies() -> None:
        with ModelConfigClient(first.address, timeout=10) as client:
            for i in range(100_000):
                account, model, request_id = f"acct-{i}", MODELS[i % 2], f"write-{i}"
                attempted.append((account, model, request_id))
                try:
                    reply = client.set_model(
                        "openai_model", model, account_id=account, request_id=request_id,
                        reason=f"write {i}",
                    )
                except Exception as exc:
                    failures.append(exc)
                    return
                acked.append(Ack(account, model, request_id, reply.revision))
                if len(acked) >= 30:
                    enough.set()

    writer = threading.Thread(target=write_until_the_daemon_dies, name="writer")
    started = time.monotonic()
    writer.start()
    try:
        assert enough.wait(timeout=60), first.describe(
            f"only {len(acked)} writes acknowledged in 60 s; failures: {failures}")
        # Land the kill at a random point of a write: a jitter, not an assertion on speed.
        elapsed = time.monotonic() - started
        time.sleep(random.uniform(0, elapsed / len(acked)))
    finally:
        first.kill()
        writer.join(timeout=30)
    assert not writer.is_alive(), "the writer still runs after the daemon was killed"
    assert len(failures) == 1 and isinstance(failures[0], Unavailable), failures
    assert [a.revision for a in acked] == list(range(2, 2 + len(acked)))

    second = daemons.start(database_url)
    client = second.client()
    revision = client.get_global_settings().revision
    assert revision == second.revision >= acked[-1].revision, second.describe("revision")

    trail = list(client.iter_changes(page_size=7))
    # No gap, no extra: exactly one change per revision, newest first, down to the seed.
    assert [c.revision for c in trail] == list(range(revision, 0, -1))
    assert trail[-1].kind == pb.CHANGE_KIND_SEED
    by_revision = {c.revision: c for c in trail}

    for ack in acked:
        change = by_revision[ack.revision]
        assert (change.kind, change.method, change.scope) == (
            pb.CHANGE_KIND_SETTING, "SetModel", pb.SCOPE_ACCOUNT)
        assert (change.account_id, change.slot, change.after.model_id) == (
            ack.account_id, "openai_model", ack.model_id), change
        assert (change.before.model_id, change.request_id) == (0, ack.request_id)

    # At most the write in flight at the kill committed without its acknowledgement.
    unacknowledged = trail[: revision - 1 - len(acked)]
    assert len(unacknowledged) <= 1, unacknowledged
    committed = {c.account_id: c for c in trail if c.kind == pb.CHANGE_KIND_SETTING}
    assert len(committed) == revision - 1  # one account per write: none recorded twice
    if unacknowledged:
        in_flight = attempted[len(acked)]
        change = unacknowledged[0]
        assert (change.account_id, change.after.model_id, change.request_id) == in_flight

    # The trail and the overrides agree exactly, for every account a write was tried for.
    never_tried = f"acct-{len(attempted)}"
    results = []
    names = [a for a, _, _ in attempted] + [never_tried]
    for start in range(0, len(names), 1000):
        results += client.resolve_for_accounts(names[start:start + 1000], ["openai_model"]).results
    for result in results:
        slot = result.slots[0]
        change = committed.get(result.account_id)
        if change is None:
            assert (slot.source, result.etag) == (pb.SOURCE_GLOBAL, "a0"), (
                f"{result.account_id} has an override but no recorded change")
        else:
            assert (slot.source, slot.model.id) == (pb.SOURCE_ACCOUNT, change.after.model_id), (
                f"{result.account_id}: change at revision {change.revision} but override {slot}")
            assert result.etag == f"a{change.revision}"
    overridden = sum(client.get_model_usage(m).account_override_count for m in MODELS)
    assert overridden == len(committed)

    # The restarted daemon records its own writes after the last revision, none reused.
    reply = client.set_model("openai_model", 2, account_id="after-restart")
    assert reply.revision == revision + 1
    newest = client.list_changes(page_size=1).changes[0]
    assert (newest.revision, newest.account_id) == (revision + 1, "after-restart")


def test_two_daemon_processes_writing_at_once_leave_a_gapless_trail(daemons, database_url):
    first = daemons.start(database_url)
    second = daemons.start(database_url)
    acked: dict[str, int] = {}
    errors: list[Exception] = []

    def write(daemon, name: str) -> None:
        try:
            with ModelConfigClient(daemon.address, timeout=30) as client:
                for i in range(20):
                    account = f"{name}-{i}"
                    reply = client.set_model("openai_model", MODELS[i % 2], account_id=account)
                    acked[account] = reply.revision
        except Exception as exc:  # reported below
            errors.append(exc)

    writers = [
        threading.Thread(target=write, args=(daemon, name))
        for daemon, name in ((first, "a"), (second, "b"))
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert not errors, errors
    assert sorted(acked.values()) == list(range(2, 42))
    for daemon in (first, second):
        trail = list(daemon.client().iter_changes(page_size=1000))
        assert [c.revision for c in trail] == list(range(41, 0, -1)), daemon.describe("trail")
        assert {c.account_id: c.revision for c in trail if c.revision > 1} == acked
