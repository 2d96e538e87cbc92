"""The daemon's limits: message sizes, open uploads, idle uploads; what a client sees at each.

A slow or stuck client cannot starve the hot path nor hold the database's write lock: client
streams (ImportOverrides, ApplyConfiguration) run on threads of their own, at most --max-uploads
at once, and one that sends nothing for --upload-idle-seconds is ended with nothing applied.
An upload whose call fails (cancelled, or a message over the size limit) applies nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.entrypoints.grpc_server import MAX_MESSAGE_BYTES, SERVICE_NAME
from tests.conftest import start_daemon

WAIT = 30.0  # generous limit of every poll and future: a busy 2-core machine
PROMPT = 10.0  # the deadline of the calls that must not wait behind stalled uploads


def _path(method: str) -> str:
    return f"/{SERVICE_NAME}/{method}"


def _row(account: str, slot: str = "openai_model", model_id: int = 2) -> api.OverrideRecord:
    return api.OverrideRecord(line=1, account_id=account, slot=slot, model_id=model_id)


def _import(*rows: api.OverrideRecord) -> bytes:
    return api.ImportOverridesRequest(rows=rows).SerializeToString()


def _error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def _poll(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


class Stalled:
    """Client streams that send some messages and then neither send nor half-close."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel
        self._release = threading.Event()
        self.calls: list[grpc.Future] = []
        self._opened: list[tuple[str, tuple[bytes, ...]]] = []

    def open(self, method: str, *messages: bytes) -> grpc.Future:
        def requests() -> Iterator[bytes]:
            yield from messages
            self._release.wait(WAIT * 4)

        call = self._channel.stream_unary(_path(method)).future(requests())
        self.calls.append(call)
        self._opened.append((method, messages))
        return call

    def reopen_ended(self) -> None:
        """Open again those that ended (refused: another call held the slot they came for)."""
        for i, call in enumerate(self.calls):
            if call.done():
                method, messages = self._opened[i]
                self.open(method, *messages)
                self.calls[i] = self.calls.pop()
                self._opened[i] = self._opened.pop()

    def close(self) -> None:
        for call in self.calls:
            call.cancel()
        self._release.set()


@pytest.fixture
def stalled(request) -> Iterator[Callable[[grpc.Channel], Stalled]]:
    opened: list[Stalled] = []

    def make(channel: grpc.Channel) -> Stalled:
        opened.append(Stalled(channel))
        return opened[-1]

    yield make
    for each in opened:
        each.close()


def _overridden(daemon, account: str) -> bool:
    answer = daemon.stub.ResolveForAccount(
        api.ResolveForAccountRequest(account_id=account), timeout=PROMPT
    )
    return any(s.source == pb.SOURCE_ACCOUNT for s in answer.slots)


# -- message sizes -------------------------------------------------------------------------------


@pytest.fixture
def sqlite_daemon(tmp_path):
    daemon = start_daemon(f"sqlite:///{tmp_path}/limits.db")
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("method", ["CreateModel", "ImportOverrides", "ApplyConfiguration"])
def test_a_message_over_the_size_limit_is_resource_exhausted_and_serving_goes_on(
    sqlite_daemon, method
):
    daemon = sqlite_daemon
    # A model whose display name alone is over the limit: valid protobuf, refused unread.
    too_big = api.CreateModelRequest(
        model=pb.Model(model_name="big", display_name="d" * MAX_MESSAGE_BYTES)
    ).SerializeToString()
    streaming = method != "CreateModel"
    call = (daemon.channel.stream_unary if streaming else daemon.channel.unary_unary)(
        _path(method)
    )
    with pytest.raises(grpc.RpcError) as err:
        call(iter([too_big]) if streaming else too_big, timeout=WAIT)
    # gRPC's own refusal, before the daemon sees the message: no ErrorInfo can come with it.
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in err.value.details()
    # Just under the limit, the daemon itself answers, with its details.
    fits = api.CreateModelRequest(
        model=pb.Model(model_name="big", display_name="d" * (MAX_MESSAGE_BYTES - 100))
    )
    with pytest.raises(grpc.RpcError) as err:
        daemon.stub.CreateModel(fits, timeout=WAIT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(err.value).domain == "modelconfig"
    assert daemon.stub.ResolveForAccount(
        api.ResolveForAccountRequest(account_id="acme"), timeout=PROMPT
    ).slots


def test_the_largest_legitimate_messages_fit_with_room_to_spare(sqlite_daemon):
    """10,000 overrides of the longest account id in the longest slot: an ExportConfiguration
    part, the import chunks that wrote them, and the configuration applied back."""
    client = sqlite_daemon.client
    slot = "s" * 64  # the longest slot name there can be
    client.create_slot(
        pb.Slot(
            name=slot,
            required_provider="openai",
            required_model_type=pb.MODEL_TYPE_TEXT,
            default_model_id=1,
        )
    )
    rows = [
        api.OverrideRecord(line=n, account_id=f"{n:06d}" + "a" * 122, slot=slot, model_id=2)
        for n in range(1, 10_001)
    ]
    chunk = api.ImportOverridesRequest(rows=rows[:5_000])  # the client's chunk size
    sqlite_daemon.stub.ImportOverrides(
        iter([chunk, api.ImportOverridesRequest(rows=rows[5_000:])]), timeout=WAIT * 4
    )
    parts = list(sqlite_daemon.stub.ExportConfiguration(api.ExportConfigurationRequest()))
    largest_part = max(p.ByteSize() for p in parts[1:])
    assert sum(len(p.overrides) for p in parts) == 10_000
    # Model ids of up to 2**53 take 7 bytes more than these small ones.
    worst_case = largest_part + 7 * 10_000
    print(
        f"\nlargest legitimate messages: export part of 10,000 overrides {largest_part} bytes "
        f"(at most {worst_case} with the largest model ids), import chunk of 5,000 rows "
        f"{chunk.ByteSize()} bytes, configuration {parts[0].ByteSize()} bytes; "
        f"limit {MAX_MESSAGE_BYTES}"
    )
    assert worst_case < MAX_MESSAGE_BYTES / 1.5
    # What the daemon sends it accepts back: the export's parts as they are, in one upload.
    applied = sqlite_daemon.stub.ApplyConfiguration(
        iter(
            [
                api.ApplyConfigurationRequest(
                    configuration=parts[0].configuration, replace_overrides=True
                ),
                *(api.ApplyConfigurationRequest(overrides=p.overrides) for p in parts[1:]),
            ]
        ),
        timeout=WAIT * 4,
    )
    assert applied.revision == parts[0].revision  # nothing differed: no new revision


# -- stalled and idle uploads --------------------------------------------------------------------


def test_stalled_uploads_starve_neither_reads_nor_writes(database_url, stalled):
    """More stalled uploads than RPC threads (4 here, --threads 2 by default): resolves and
    settings writes still answer, and the stalled import holds no database lock."""
    daemon = start_daemon(database_url)
    try:
        uploads = stalled(daemon.channel)
        configuration = daemon.client.export_configuration()
        first = next(iter(configuration)).configuration
        holding = uploads.open("ImportOverrides", _import(_row("stalled")))
        for _ in range(3):
            uploads.open(
                "ApplyConfiguration",
                api.ApplyConfigurationRequest(configuration=first).SerializeToString(),
            )
        for _ in range(2):
            uploads.open("ImportOverrides")  # not even a first message
        time.sleep(0.5)  # let them all reach the daemon and stall
        assert not any(call.done() for call in uploads.calls)

        started = time.monotonic()
        assert daemon.stub.ResolveForAccount(
            api.ResolveForAccountRequest(account_id="acme"), timeout=PROMPT
        ).slots
        resolved = time.monotonic() - started
        daemon.stub.SetModel(
            api.SetModelRequest(
                slot="openai_model", model_id=2, account_id="acme", scope=pb.SCOPE_ACCOUNT
            ),
            timeout=PROMPT,
        )
        written = time.monotonic() - started - resolved
        print(f"\nbehind 6 stalled uploads: resolve {resolved * 1000:.0f} ms, "
              f"SetModel {written * 1000:.0f} ms")
        assert _overridden(daemon, "acme")
        # Bulk writes go one at a time: the stalled import holds that turn, and says so.
        refusals: list[grpc.RpcError] = []

        def turn_taken() -> bool:  # once the stalled import has its first message in
            try:
                daemon.channel.stream_unary(_path("ImportOverrides"))(
                    iter([_import(_row("other"))]), timeout=PROMPT
                )
            except grpc.RpcError as exc:
                refusals.append(exc)
                return True
            return False

        _poll(turn_taken, "another import to be refused")
        assert refusals[0].code() == grpc.StatusCode.ABORTED
        assert _error_info(refusals[0]).reason == "IMPORT_IN_PROGRESS"

        uploads.close()  # the clients give up: nothing of theirs is applied, the turn is free
        _poll(lambda: holding.done(), "the cancelled import to end")
        daemon.channel.stream_unary(_path("ImportOverrides"))(
            iter([_import(_row("after"))]), timeout=WAIT
        )
        assert _overridden(daemon, "after")
        assert not _overridden(daemon, "stalled")
    finally:
        daemon.stop()


def test_an_idle_upload_is_ended_with_nothing_applied(tmp_path, stalled):
    daemon = start_daemon(f"sqlite:///{tmp_path}/idle.db", upload_idle_seconds=1.0)
    try:
        uploads = stalled(daemon.channel)
        importing = uploads.open("ImportOverrides", _import(_row("idle")))
        applying = uploads.open("ApplyConfiguration")
        for call in (importing, applying):
            error = call.exception(timeout=WAIT)
            assert error is not None and error.code() == grpc.StatusCode.ABORTED
            info = _error_info(error)
            assert (info.domain, info.reason) == ("modelconfig", "STREAM_IDLE")
            assert info.metadata["idle_seconds"] == "1"
        assert not _overridden(daemon, "idle")
        # The turn of bulk writes is free again at once.
        daemon.channel.stream_unary(_path("ImportOverrides"))(
            iter([_import(_row("next"))]), timeout=WAIT
        )
        assert _overridden(daemon, "next")
    finally:
        daemon.stop()


def test_uploads_beyond_the_limit_are_resource_exhausted(tmp_path, stalled):
    daemon = start_daemon(f"sqlite:///{tmp_path}/many.db", max_uploads=2)
    try:
        uploads = stalled(daemon.channel)
        uploads.open("ImportOverrides")
        uploads.open("ApplyConfiguration")
        refusals: list[grpc.RpcError] = []

        def refused() -> bool:  # once both stalled ones are in
            uploads.reopen_ended()
            return _refused_upload(daemon.channel, refusals)

        _poll(refused, "a third upload to be refused")
        info = _error_info(refusals[0])
        assert (info.domain, info.reason) == ("modelconfig", "TOO_MANY_UPLOADS")
        assert info.metadata["limit"] == "2"
        # Watches have slots of their own.
        watch = daemon.stub.WatchChanges(api.WatchChangesRequest(), timeout=WAIT)
        assert next(watch).revision >= 1
        watch.cancel()

        uploads.close()

        def imported() -> bool:
            try:
                daemon.channel.stream_unary(_path("ImportOverrides"))(
                    iter([_import(_row("later"))]), timeout=PROMPT
                )
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
                return False
            return True

        _poll(imported, "the slots to be given back")
    finally:
        daemon.stop()


# -- failed uploads ------------------------------------------------------------------------------


def test_a_cancelled_upload_applies_nothing(sqlite_daemon):
    """Regression: the request iterator stops alike on a half-close and on a cancellation, and
    3 of 30 cancelled imports were applied with the rows received so far."""
    daemon = sqlite_daemon
    for n in range(15):
        release = threading.Event()

        def requests(n: int = n, release: threading.Event = release) -> Iterator[bytes]:
            yield _import(_row(f"cancelled-{n}"))
            release.wait(WAIT)

        call = daemon.channel.stream_unary(_path("ImportOverrides")).future(requests())
        time.sleep(0.1)  # the first message is in
        call.cancel()
        release.set()
        time.sleep(0.1)
        assert not _overridden(daemon, f"cancelled-{n}"), f"attempt {n}: applied in part"
    daemon.channel.stream_unary(_path("ImportOverrides"))(
        iter([_import(_row("whole"))]), timeout=WAIT
    )
    assert _overridden(daemon, "whole")


def test_an_upload_with_a_message_over_the_limit_applies_nothing(sqlite_daemon):
    """Regression: 3 of 30 imports whose second message was over the size limit were applied
    with their first message's rows (gRPC answered RESOURCE_EXHAUSTED all the same)."""
    daemon = sqlite_daemon
    too_big = b"\x00" * (MAX_MESSAGE_BYTES + 1)  # refused by gRPC before it is decoded
    for n in range(30):
        with pytest.raises(grpc.RpcError) as err:
            daemon.channel.stream_unary(_path("ImportOverrides"))(
                iter([_import(_row(f"first-{n}")), too_big]), timeout=WAIT
            )
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    time.sleep(0.3)
    applied = [n for n in range(30) if _overridden(daemon, f"first-{n}")]
    assert applied == [], f"applied in part: attempts {applied}"


# -- configuration -------------------------------------------------------------------------------


def test_the_limits_are_set_by_flags_and_variables(daemons, tmp_path):
    process = daemons.start(
        f"sqlite:///{tmp_path}/flags.db",
        env={
            "MODELCONFIG_MAX_MESSAGE_BYTES": "65536",
            "MODELCONFIG_MAX_UPLOADS": "1",
            "MODELCONFIG_UPLOAD_IDLE_SECONDS": "3",
        },
    )
    channel = process.channel()
    call = channel.unary_unary(_path("CreateModel"))
    with pytest.raises(grpc.RpcError) as err:
        call(b"\x0a\x83\x80\x04" + b"\x00" * 65_539, timeout=WAIT)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    uploads = Stalled(channel)
    try:
        uploads.open("ImportOverrides")
        refusals: list[grpc.RpcError] = []

        def refused() -> bool:  # once the stalled one is in
            uploads.reopen_ended()
            return _refused_upload(channel, refusals)

        _poll(refused, "a second upload to be refused")
        assert _error_info(refusals[0]).reason == "TOO_MANY_UPLOADS"
        # The one open then is ended by its idle limit.
        assert _error_info(uploads.calls[0].exception(timeout=WAIT)).reason == "STREAM_IDLE"
    finally:
        uploads.close()


def _refused_upload(channel: grpc.Channel, refusals: list[grpc.RpcError]) -> bool:
    """Whether an upload is refused for want of a slot (noted in `refusals`)."""
    try:
        channel.stream_unary(_path("ImportOverrides"))(iter([]), timeout=PROMPT)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            refusals.append(exc)
            return True
    return False
