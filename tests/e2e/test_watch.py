"""WatchChanges over a real port, on SQLite and PostgreSQL: order, resume, heartbeats, the
replay window, imports in parts, a revision ahead, draining, and watchers beside the hot path."""

from __future__ import annotations

import queue
import threading
import time

import grpc
import pytest

from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.service_layer.change_feed import KeepPolicy

from ..conftest import Daemon, start_daemon
from .secure_helpers import refusal

WAIT = 10.0  # seconds a test waits for a response that must come


class Watch:
    """One WatchChanges stream, read by a thread into a queue (a test never blocks on it)."""

    def __init__(self, stub, start_revision: int = 0) -> None:
        self.call = stub.WatchChanges(api.WatchChangesRequest(start_revision=start_revision))
        self.responses: queue.Queue = queue.Queue()
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.put(response)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error
        finally:
            self.ended.set()

    def next(self, timeout: float = WAIT) -> api.WatchChangesResponse:
        return self.responses.get(timeout=timeout)

    def until(self, revision: int, timeout: float = WAIT) -> list[api.WatchChangesResponse]:
        """Responses up to the one that completes `revision` (more false)."""
        received = []
        deadline = time.monotonic() + timeout
        while True:
            response = self.next(max(0.01, deadline - time.monotonic()))
            received.append(response)
            if response.revision >= revision and not response.more:
                return received

    def failure(self, timeout: float = WAIT) -> tuple[grpc.StatusCode, str, dict[str, str]]:
        assert self.ended.wait(timeout), "the stream did not end"
        return refusal(self.error)

    def close(self) -> None:
        self.call.cancel()


@pytest.fixture
def watches(daemon):
    opened: list[Watch] = []

    def open_watch(start_revision: int = 0, on: Daemon | None = None) -> Watch:
        watch = Watch((on or daemon).stub, start_revision)
        opened.append(watch)
        return watch

    yield open_watch
    for watch in opened:
        watch.close()


def changes_of(responses) -> list[pb.Change]:
    return [c for r in responses for c in r.changes]


def recorded(client, after: int) -> list[pb.Change]:
    """The changes after `after` as ListChanges returns them, oldest first."""
    return sorted(client.iter_changes(min_revision=after + 1), key=lambda c: c.revision)


def some_writes(client) -> None:
    """One of each kind of write a watcher must see."""
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    client.set_model("openai_model", "gpt-3.5-turbo", scope=pb.SCOPE_GLOBAL)
    client.clear_account_model("acme", "openai_model")
    model = client.get_model(2).model
    model.display_name = "GPT-4o (renamed)"
    client.update_model(model, ["display_name"])


def test_from_now_the_first_response_comes_at_once_with_the_catalog(client, watches):
    settings = client.get_global_settings()
    started = time.monotonic()
    first = watches().next()
    assert time.monotonic() - started < 2.0
    assert first.revision == settings.revision
    assert not first.changes and not first.more
    assert [m.id for m in first.catalog.models] == [m.id for m in client.list_models().models]
    assert list(first.catalog.slots) == list(settings.slots)
    assert first.catalog.global_etag == settings.etag


def test_every_change_arrives_once_in_order_as_list_changes_records_it(client, watches):
    watch = watches()
    start = watch.next().revision
    some_writes(client)
    head = client.get_global_settings().revision
    received = watch.until(head)
    assert changes_of(received) == recorded(client, start)
    assert [r.revision for r in received] == sorted(r.revision for r in received)


def test_the_catalog_comes_with_the_changes_that_touch_it_and_only_those(client, watches):
    watch = watches()
    watch.next()
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    account_write = watch.until(client.get_global_settings().revision)
    assert not any(r.HasField("catalog") for r in account_write)
    client.set_model("openai_model", "gpt-3.5-turbo", scope=pb.SCOPE_GLOBAL)
    global_write = watch.until(client.get_global_settings().revision)[-1]
    assert global_write.HasField("catalog")
    settings = client.get_global_settings()
    assert list(global_write.catalog.slots) == list(settings.slots)
    assert global_write.catalog.global_etag == settings.etag


def test_a_watch_resumes_after_a_revision_with_exactly_what_it_missed(client, watches):
    first = watches().next().revision
    some_writes(client)
    head = client.get_global_settings().revision
    resumed = watches(first).until(head)
    assert changes_of(resumed) == recorded(client, first)
    assert resumed[-1].HasField("catalog"), "the state at the end of a replay comes whole"


def test_a_watch_from_the_current_revision_answers_at_once_and_then_follows(client, watches):
    head = client.get_global_settings().revision
    watch = watches(head)
    assert watch.next().revision == head
    client.set_model("dalle_model", "dall-e-3", account_id="acme")
    assert changes_of(watch.until(head + 1))[0].account_id == "acme"


def test_an_idle_watch_gets_heartbeats_with_the_current_revision(daemon, watches):
    daemon.app.feed.HEARTBEAT_SECONDS = 0.3
    watch = watches()
    first = watch.next()
    beats = [watch.next(timeout=3), watch.next(timeout=3)]
    assert all(not b.changes and not b.more and b.revision == first.revision for b in beats)


def test_an_import_comes_in_bounded_parts_applied_at_the_last(daemon, client, watches):
    daemon.app.feed.PART_OVERRIDES = 50
    watch = watches()
    watch.next()
    rows = [
        api.OverrideRecord(account_id=f"acct-{i:03}", slot="openai_model", model_id=2)
        for i in range(120)
    ]
    revision = client.import_overrides(rows).revision
    parts = watch.until(revision)
    assert [len(p.overrides) for p in parts] == [50, 50, 20]
    assert [p.more for p in parts] == [True, True, False]
    assert {p.revision for p in parts} == {revision}
    assert [c.kind for c in changes_of(parts)] == [pb.CHANGE_KIND_IMPORT]
    assert len(parts[0].changes) == 1, "the import's change comes with its first part"
    assert sorted((o.account_id, o.slot, o.model_id) for p in parts for o in p.overrides) == [
        (f"acct-{i:03}", "openai_model", 2) for i in range(120)
    ]
    assert {o.revision for p in parts for o in p.overrides} == {revision}


def test_reverting_an_import_sends_the_cleared_overrides(daemon, client, watches):
    rows = [
        api.OverrideRecord(account_id=f"acct-{i}", slot="openai_model", model_id=2)
        for i in range(3)
    ]
    imported = client.import_overrides(rows).revision
    watch = watches()
    watch.next()
    revision = client.revert_change(imported).revision
    parts = watch.until(revision)
    assert sorted((o.account_id, o.model_id) for p in parts for o in p.overrides) == [
        (f"acct-{i}", 0) for i in range(3)
    ]


def test_a_revision_older_than_the_replay_window_is_out_of_range_compacted(database_url):
    daemon = start_daemon(database_url, keep=KeepPolicy(revisions=2))
    try:
        for model in ("gpt-3.5-turbo", "gpt-4o-mini", "gpt-3.5-turbo", "gpt-4o-mini"):
            daemon.client.set_model("openai_model", model, account_id="acme")
        head = daemon.client.get_global_settings().revision
        oldest = daemon.app.feed.move_window()
        assert oldest == head - 2
        code, reason, metadata = Watch(daemon.stub, oldest - 1).failure()
        assert (code, reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED")
        assert metadata["oldest_revision"] == str(oldest)
        kept = Watch(daemon.stub, oldest)
        assert [c.revision for c in changes_of(kept.until(head))] == [head - 1, head]
        kept.close()
    finally:
        daemon.stop()


def test_a_duration_keeps_what_was_committed_within_it(database_url):
    daemon = start_daemon(database_url, keep=KeepPolicy(seconds=0.5))
    try:
        daemon.client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
        time.sleep(0.6)
        daemon.client.set_model("openai_model", "gpt-4o-mini", account_id="acme")
        head = daemon.client.get_global_settings().revision
        assert daemon.app.feed.move_window() == head - 1
        code, reason, _ = Watch(daemon.stub, head - 2).failure()
        assert (code, reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED")
    finally:
        daemon.stop()


def test_a_revision_ahead_waits_for_the_daemon_then_follows(client, watches):
    head = client.get_global_settings().revision
    watch = watches(head + 1)
    time.sleep(0.2)
    assert watch.responses.empty(), "nothing before the daemon reaches the revision"
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    first = watch.next()
    assert (first.revision, list(first.changes)) == (head + 1, [])
    client.set_model("openai_model", "gpt-4o-mini", account_id="acme")
    assert [c.revision for c in changes_of(watch.until(head + 2))] == [head + 2]


def test_a_revision_that_stays_ahead_is_out_of_range_ahead(daemon, client, watches):
    daemon.app.feed.AHEAD_WAIT_SECONDS = 0.3
    head = client.get_global_settings().revision
    code, reason, metadata = watches(head + 5).failure()
    assert (code, reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_AHEAD")
    assert metadata == {"start_revision": str(head + 5), "revision": str(head)}


def test_a_negative_start_revision_is_invalid_argument(watches):
    code, _, metadata = watches(-1).failure()
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata["start_revision"] == "-1"


def test_draining_ends_every_watch_with_unavailable(daemon, watches):
    streams = [watches(), watches()]
    for watch in streams:
        watch.next()
    daemon.app.feed.close()
    for watch in streams:
        assert watch.failure()[:2] == (grpc.StatusCode.UNAVAILABLE, "DRAINING")


def test_watchers_do_not_take_the_threads_that_answer_calls(daemon, client, watches):
    streams = [watches() for _ in range(12)]  # three times the daemon's RPC threads
    for watch in streams:
        watch.next()
    assert client.resolve_for_account("acme").account_id == "acme"
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    head = client.get_global_settings().revision
    for watch in streams:
        assert watch.until(head)[-1].revision == head


def test_watchers_beyond_the_limit_are_resource_exhausted(database_url):
    daemon = start_daemon(database_url, max_streams=2)
    try:
        kept = [Watch(daemon.stub), Watch(daemon.stub)]
        for watch in kept:
            watch.next()
        code, reason, metadata = Watch(daemon.stub).failure()
        assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_WATCHERS")
        assert metadata == {"limit": "2"}
        kept[0].close()
        deadline = time.monotonic() + WAIT
        while True:  # the slot is given back once the cancelled stream's thread has ended
            again = Watch(daemon.stub)
            try:
                assert again.next(timeout=1).revision
                break
            except queue.Empty:
                assert again.failure()[1] == "TOO_MANY_WATCHERS"
                assert time.monotonic() < deadline, "the cancelled watch kept its slot"
    finally:
        daemon.stop()


def test_a_write_on_another_daemon_reaches_this_daemons_watchers(database_url, daemons):
    """Two daemon processes on one database: the watcher's daemon learns of the other's write
    by its poll, and passes it on."""
    watched, writer = daemons.start(database_url), daemons.start(database_url)
    with watched.client() as reader, writer.client() as client:
        watch = Watch(reader._stub)
        try:
            watch.next()
            revision = client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme").revision
            assert changes_of(watch.until(revision)) == recorded(reader, revision - 1)
        finally:
            watch.close()
