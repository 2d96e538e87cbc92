"""Races: many clients on one etag, readers under writers, daemons sharing one SQLite file.

test_consistency.py has two writers on one etag and readers beside one writer; these scale that
up: sixteen clients on their own channels per round, many writers and readers with the history
checked afterwards, and a storm over two `modelconfigd` processes, a large import and a third
daemon starting in the middle of it, on one SQLite file.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import grpc
import pytest

from modelconfig import ModelConfigClient
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import model_config_service_pb2_grpc as api_grpc
from modelconfig.v1 import resources_pb2 as pb
from tests.conftest import SOAK

from .secure_helpers import refusal

TIMEOUT = 120  # generous: the machine is busy; a call that takes this long is a failure
OPENAI_TEXT = (1, 2, 3, 8, 9, 10)  # seeded openai text models: all fit `openai_model`
ANTHROPIC_TEXT = (4, 5, 15, 16)  # seeded anthropic text models: all fit `anthropic_model`


def stubs(address: str, count: int) -> tuple[list[api_grpc.ModelConfigServiceStub], Callable]:
    """`count` stubs, each on its own channel, and a function closing them."""
    channels = [grpc.insecure_channel(address) for _ in range(count)]
    return [api_grpc.ModelConfigServiceStub(c) for c in channels], lambda: [
        c.close() for c in channels
    ]


def outcome(call, request) -> tuple[grpc.StatusCode, str, object]:
    """(code, ErrorInfo reason, reply or error message) of one call."""
    try:
        return grpc.StatusCode.OK, "", call(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        code, reason, _ = refusal(error)
        return code, reason, error.details()


def run_all(targets: list[Callable[[], None]], timeout: float = 600) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a racer is stuck"


# -- (a) one etag, many racers: exactly one wins ---------------------------------------------------


@pytest.mark.soak
@pytest.mark.parametrize("scope", ["global", "account"])
def test_sixteen_clients_on_one_etag_one_wins_each_round(daemon, scope):
    racers, rounds = 16, (60 if SOAK else 6)
    clients, close = stubs(daemon.address, racers)
    account = "" if scope == "global" else "race-acct"
    reader = daemon.stub
    tally: Counter[str] = Counter()
    try:
        for round_ in range(rounds):
            if scope == "global":
                read = reader.GetGlobalSettings(api.GetGlobalSettingsRequest())
                current = next(s.model.id for s in read.slots if s.slot == "openai_model")
            else:
                read = reader.ResolveForAccount(
                    api.ResolveForAccountRequest(account_id=account, slots=["openai_model"])
                )
                slot = read.slots[0]
                current = slot.model.id if slot.source == pb.SOURCE_ACCOUNT else 0
            etag, before = read.etag, read.revision
            # Every racer asks for a real change (a model other than the current one), so a
            # no-op can never pass as a second winner.
            others = [m for m in OPENAI_TEXT if m != current]
            barrier = threading.Barrier(racers)
            results: list[tuple] = [()] * racers

            def race(i: int, etag=etag, others=others, barrier=barrier, results=results) -> None:
                request = api.SetModelRequest(
                    slot="openai_model",
                    model_id=others[i % len(others)],
                    account_id=account,
                    scope=pb.SCOPE_GLOBAL if scope == "global" else pb.SCOPE_ACCOUNT,
                    etag=etag,
                )
                barrier.wait(timeout=TIMEOUT)
                results[i] = (*outcome(clients[i].SetModel, request), request.model_id)

            run_all([lambda i=i: race(i) for i in range(racers)])
            won = [r for r in results if r[0] == grpc.StatusCode.OK]
            lost = [r for r in results if r[0] != grpc.StatusCode.OK]
            assert len(won) == 1, f"round {round_}: {len(won)} winners: {results}"
            assert {(code, reason) for code, reason, *_ in lost} == {
                (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
            }, f"round {round_}: {lost}"
            reply, model = won[0][2], won[0][3]
            assert reply.revision == before + 1 and reply.etag != etag
            # Nothing else committed: the state, the etag and the audit trail are the winner's.
            head = reader.ListChanges(api.ListChangesRequest(page_size=1)).changes[0]
            assert (head.revision, head.after.model_id) == (reply.revision, model)
            if scope == "global":
                after = reader.GetGlobalSettings(api.GetGlobalSettingsRequest())
                now = next(s.model.id for s in after.slots if s.slot == "openai_model")
            else:
                after = reader.ResolveForAccount(
                    api.ResolveForAccountRequest(account_id=account, slots=["openai_model"])
                )
                now = after.slots[0].model.id
            assert (now, after.etag, after.revision) == (model, reply.etag, reply.revision)
            tally["won"] += 1
            tally["aborted"] += len(lost)
    finally:
        close()
    print(
        f"\n{scope}: {rounds} rounds of {racers} racers on one etag: {tally['won']} won, "
        f"{tally['aborted']} ABORTED ETAG_MISMATCH"
    )


# -- (b) no etags: readers see committed states only, never going back -----------------------------


@pytest.mark.soak
def test_without_etags_readers_never_go_back_and_end_on_the_last_write(daemon):
    writers, readers = 4, 4
    writes_each = 150 if SOAK else 25
    account, bystander = "race-acct", "race-bystander"
    write_stubs, close_writers = stubs(daemon.address, writers)
    read_stubs, close_readers = stubs(daemon.address, readers)
    start = daemon.stub.GetGlobalSettings(api.GetGlobalSettingsRequest()).revision
    # Two keys: the account's override (writers 0, 2) and the global setting (writers 1, 3),
    # which the bystander, without an override, resolves to.
    acks: dict[str, list[tuple[int, int]]] = {"account": [(start, 0)], "global": [(start, 1)]}
    failures: list[tuple] = []
    observed: list[list[tuple[int, str, int]]] = [[] for _ in range(readers)]
    stop = threading.Event()
    lock = threading.Lock()

    def write(i: int) -> None:
        key = "account" if i % 2 == 0 else "global"
        for n in range(writes_each):
            model = OPENAI_TEXT[(i + n) % len(OPENAI_TEXT)]
            request = api.SetModelRequest(slot="openai_model", model_id=model)
            if key == "account":
                request.account_id = account
            else:
                request.scope = pb.SCOPE_GLOBAL
            code, reason, reply = outcome(write_stubs[i].SetModel, request)
            with lock:
                if code != grpc.StatusCode.OK:
                    failures.append((code, reason, reply))
                else:
                    acks[key].append((reply.revision, model))

    def read(i: int) -> None:
        stub = read_stubs[i]
        while True:
            last = stop.is_set()  # one more read after the writers stopped
            for who, key in ((account, "account"), (bystander, "global")):
                reply = stub.ResolveForAccount(
                    api.ResolveForAccountRequest(account_id=who, slots=["openai_model"]),
                    timeout=TIMEOUT,
                )
                slot = reply.slots[0]
                model = slot.model.id if key == "global" or slot.source == pb.SOURCE_ACCOUNT else 0
                observed[i].append((reply.revision, key, model))
            settings = stub.GetGlobalSettings(api.GetGlobalSettingsRequest(), timeout=TIMEOUT)
            model = next(s.model.id for s in settings.slots if s.slot == "openai_model")
            observed[i].append((settings.revision, "global", model))
            if last:
                return

    def writers_then_stop() -> None:
        run_all([lambda i=i: write(i) for i in range(writers)])
        stop.set()

    try:
        run_all([writers_then_stop, *[lambda i=i: read(i) for i in range(readers)]])
    finally:
        close_writers()
        close_readers()
    assert not failures, failures[:5]
    final = daemon.stub.GetGlobalSettings(api.GetGlobalSettingsRequest()).revision
    history = {key: sorted(values) for key, values in acks.items()}

    def at(key: str, revision: int) -> int:
        """The model the key held at `revision`: that of the newest write at or before it."""
        return max((r, m) for r, m in history[key] if r <= revision)[1]

    last = {key: values[-1] for key, values in history.items()}
    assert max(r for r, _ in (last["account"], last["global"])) == final
    reads = 0
    for i, seen in enumerate(observed):
        revisions = [r for r, _, _ in seen]
        assert revisions == sorted(revisions), f"reader {i} went back: {revisions}"
        for revision, key, model in seen:
            assert model == at(key, revision), (i, revision, key, model)
        # After the writers stopped, each reader sees the last committed write of both keys.
        assert [(r, k, m) for r, k, m in seen[-3:]] == [
            (final, "account", last["account"][1]),
            (final, "global", last["global"][1]),
            (final, "global", last["global"][1]),
        ], i
        reads += len(seen)
    assert any(start < r < final for seen in observed for r, _, _ in seen), (
        "the readers overlapped the writes"
    )
    print(
        f"\n{writers} writers x {writes_each} writes, {readers} readers: {reads} reads, "
        f"revisions {start} -> {final}, none stale, none going back"
    )


# -- (c) two daemons, an import and a third start on one SQLite file ------------------------------


@pytest.mark.soak
def test_two_daemons_an_import_and_a_start_share_one_sqlite_file(daemons, tmp_path):
    rows = 100_000 if SOAK else 20_000
    writers_per_daemon = 3 if SOAK else 2
    url = f"sqlite:///{tmp_path}/shared.db"
    first, second = daemons.start(url), daemons.start(url)
    live = [first, second]  # the daemons writers spread over; the third joins when serving
    acked: dict[tuple[str, str], int] = {}
    global_acks: list[tuple[int, int]] = []
    failures: list[tuple] = []
    counts: Counter[str] = Counter()
    import_done = threading.Event()
    third_up = threading.Event()
    stop = threading.Event()
    lock = threading.Lock()
    figures: dict[str, tuple[float, float]] = {}

    def record(code, reason, reply, what: str) -> bool:
        with lock:
            counts[f"{what} {code.name}"] += 1
            if code != grpc.StatusCode.OK:
                failures.append((what, code, reason, reply))
        return code == grpc.StatusCode.OK

    def writer(w: int) -> None:
        channels: dict[str, api_grpc.ModelConfigServiceStub] = {}
        n = 0
        try:
            while not stop.is_set():
                target = live[(w + n) % len(live)]
                stub = channels.setdefault(
                    target.name, api_grpc.ModelConfigServiceStub(target.channel())
                )
                if w == 0 and n % 3 == 0:  # one writer also moves the global setting
                    model = OPENAI_TEXT[n % len(OPENAI_TEXT)]
                    code, reason, reply = outcome(
                        stub.SetModel,
                        api.SetModelRequest(
                            slot="openai_model", model_id=model, scope=pb.SCOPE_GLOBAL
                        ),
                    )
                    if record(code, reason, reply, "SetModel global"):
                        with lock:
                            global_acks.append((reply.revision, model))
                            top[0] = max(top[0], reply.revision)
                else:
                    # Each write its own override, so every acknowledged one must be kept.
                    slot, models = (
                        ("openai_model", OPENAI_TEXT)
                        if n % 2
                        else ("anthropic_model", ANTHROPIC_TEXT)
                    )
                    account, model = f"w{w}-{n}", models[n % len(models)]
                    code, reason, reply = outcome(
                        stub.SetModel,
                        api.SetModelRequest(slot=slot, model_id=model, account_id=account),
                    )
                    if record(code, reason, reply, "SetModel account"):
                        with lock:
                            acked[(account, slot)] = model
                            top[0] = max(top[0], reply.revision)
                n += 1
        except Exception as exc:
            failures.append(("writer", w, repr(exc)))

    imports: list[tuple[float, float, int]] = []  # (began, ended, k) of each acknowledged one
    top = [0]  # the highest revision acknowledged to any writer

    def importer() -> None:
        # Import after import (each on the next daemon, each moving every row to another
        # model) until the third daemon serves and the storm has seen at least two.
        k = 0
        while not (third_up.is_set() and k >= 2) and not failures:
            target = live[k % len(live)]
            client = ModelConfigClient(channel=target.channel(), timeout=None)
            records = (
                api.OverrideRecord(
                    line=n + 1,
                    account_id=f"imp-{n:06d}",
                    slot="openai_model",
                    model_id=OPENAI_TEXT[(n + k) % len(OPENAI_TEXT)],
                )
                for n in range(rows)
            )
            began = time.monotonic()
            try:
                reply = client.import_overrides(records, timeout=600)
                assert (reply.rows, reply.changed_rows) == (rows, rows), reply
                imports.append((began, time.monotonic(), k))
                with lock:
                    top[0] = max(top[0], reply.revision)
            except Exception as exc:
                failures.append(("ImportOverrides", repr(exc)))
            k += 1
        import_done.set()

    def third_start() -> None:
        while not imports and not import_done.is_set():  # into the storm, after one import
            time.sleep(0.05)
        began = time.monotonic()
        try:
            live.append(daemons.start(url))
            figures["third_start"] = (began, time.monotonic())
        except Exception as exc:
            failures.append(("third start", repr(exc)))
        finally:
            third_up.set()

    def conductor() -> None:
        import_done.wait(600)
        third_up.wait(600)
        time.sleep(20.0 if SOAK else 2.0)  # keep hammering all three for a while
        stop.set()

    storm = [
        *[lambda w=w: writer(w) for w in range(2 * writers_per_daemon)],
        importer,
        third_start,
        conductor,
    ]
    began = time.monotonic()
    run_all(storm, timeout=900)
    figures["storm_s"] = (time.monotonic() - began, 0.0)
    assert not failures, failures[:10]
    assert len(live) == 3

    # Every acknowledged write is there, read back through each daemon once it has caught up
    # with the others' commits (a daemon learns of them by notification or by polling).
    assert _catch_up(live, top[0]), f"a daemon stays behind revision {top[0]}"
    last_import = max(imports)[2]  # imports run one after the other: the last one holds
    for d in live:
        final: dict[tuple[str, str], int] = {}
        globals_: dict[str, int] = {}
        client = ModelConfigClient(channel=d.channel(), timeout=TIMEOUT)
        for part in client.export_configuration(timeout=TIMEOUT):
            assert part.revision >= top[0]
            if part.HasField("configuration"):
                globals_ = {g.slot: g.model_id for g in part.configuration.global_settings}
            for o in part.overrides:
                final[(o.account_id, o.slot)] = o.model_id
        missing = [(k, m) for k, m in acked.items() if final.get(k) != m]
        assert not missing, (d.name, missing[:10])
        imported = {k: m for k, m in final.items() if k[0].startswith("imp-")}
        assert imported == {
            (f"imp-{n:06d}", "openai_model"): OPENAI_TEXT[(n + last_import) % len(OPENAI_TEXT)]
            for n in range(rows)
        }, d.name
        if global_acks:
            assert globals_["openai_model"] == max(global_acks)[1], d.name
    for d in live:
        assert "database is locked" not in d.stderr()
    writes = sum(v for k, v in counts.items() if k.startswith("SetModel"))
    spawned, serving = figures["third_start"]
    overlapped = sum(1 for b, e, _ in imports if b < serving and e > spawned)
    print(
        f"\nshared SQLite file: {writes} writes acknowledged over 3 daemons in "
        f"{figures['storm_s'][0]:.1f}s ({dict(counts)}), 0 refused; {len(imports)} imports of "
        f"{rows} rows ({', '.join(f'{e - b:.1f}s' for b, e, _ in imports)}); the third daemon "
        f"serving {serving - spawned:.1f}s after its start, overlapping {overlapped} imports"
    )


def _catch_up(live, revision: int, within: float = 60.0) -> bool:
    """Whether every daemon reaches `revision`, waiting for it by polling."""
    clients = [d.client() for d in live]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(c.get_global_settings().revision >= revision for c in clients):
            return True
        time.sleep(0.2)
    return False
