"""`--workers N`: N processes serve one port, each with its own snapshot, kept coherent."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc

from modelconfig import ModelConfigClient
from modelconfig.v1 import resources_pb2 as pb

from .process_helpers import free_port

WORKERS = {"MODELCONFIG_WORKERS": "2"}


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()


def clients(address: str, count: int) -> list[ModelConfigClient]:
    """Clients on distinct connections (a distinct channel argument each), which the kernel
    spreads over the workers: with 16, all landing on one of two workers has odds 1 in 32768."""
    return [
        ModelConfigClient(channel=grpc.insecure_channel(address, options=[("test.conn", i)]))
        for i in range(count)
    ]


def test_workers_share_the_port_and_see_each_others_writes(daemons, database_url):
    supervisor = daemons.start(database_url, env=WORKERS)
    assert len(children(supervisor.proc.pid)) == 2
    readers = clients(supervisor.address, 16)
    assert all(c.resolve_for_account("acct-w").etag == "a0" for c in readers)

    written = readers[0].set_model("openai_model", "gpt-3.5-turbo", account_id="acct-w")

    def everyone_sees_it() -> bool:
        return all(
            c.resolve_for_account("acct-w", ["openai_model"]).slots[0].source == pb.SOURCE_ACCOUNT
            for c in readers
        )

    # Each worker polls every 0.5 s; the wide bound is for a loaded machine, not a speed check.
    assert wait_for(everyone_sees_it, timeout=15), "a worker did not catch up"
    revisions = {c.resolve_for_account("acct-w").revision for c in readers}
    assert revisions == {written.revision}


def test_a_dead_worker_is_replaced(daemons, database_url):
    supervisor = daemons.start(database_url, env=WORKERS)
    first = children(supervisor.proc.pid)
    os.kill(min(first), signal.SIGKILL)
    replaced = wait_for(
        lambda: (lambda now: now if len(now) == 2 and now != first else None)(
            children(supervisor.proc.pid)
        ),
        timeout=15,
    )
    assert replaced, f"workers were {first}, now {children(supervisor.proc.pid)}"
    assert supervisor.client().resolve_for_account("acme").slots


def test_sigterm_stops_every_worker_and_exits_zero(daemons, database_url):
    supervisor = daemons.start(database_url, env=WORKERS)
    workers = children(supervisor.proc.pid)
    supervisor.proc.send_signal(signal.SIGTERM)
    assert supervisor.wait_exit(timeout=15) == 0, supervisor.describe("did not exit cleanly")
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_burst_of_sigterms_to_the_group_stops_every_worker_and_exits_zero(
    daemons, database_url
):
    supervisor = daemons.start(database_url, env=WORKERS)
    workers = children(supervisor.proc.pid)
    # To the process group, as a process manager or Ctrl-C does: the workers get the burst
    # directly, on top of what the supervisor forwards.
    for _ in range(300):
        os.killpg(supervisor.proc.pid, signal.SIGTERM)
    assert supervisor.wait_exit(timeout=30) == 0, supervisor.describe("no clean exit")
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_sigterm_while_workers_start_stops_every_worker_and_exits_zero(daemons, database_url):
    supervisor = daemons.spawn(database_url, env=WORKERS)
    pid = supervisor.proc.pid
    # Signal as soon as the first worker exists, and keep signalling while the others start.
    assert wait_for(lambda: supervisor.proc.poll() is not None or children(pid), timeout=30)
    workers: set[int] = set()
    for _ in range(200):
        if supervisor.proc.poll() is not None:
            break
        workers |= children(pid)
        supervisor.proc.send_signal(signal.SIGTERM)
        time.sleep(0.002)
    assert supervisor.wait_exit(timeout=30) == 0, supervisor.describe("no clean exit")
    assert workers and not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_the_daemon_serves_again_after_every_worker_died(daemons, database_url):
    supervisor = daemons.start(database_url, env=WORKERS)
    for pid in children(supervisor.proc.pid):
        os.kill(pid, signal.SIGKILL)
    client = supervisor.client(timeout=2)

    def answers() -> bool:
        try:
            return bool(client.resolve_for_account("acme").slots)
        except Exception:  # no worker serving yet
            return False

    assert wait_for(answers, timeout=30), supervisor.describe("no replaced worker serves")
    assert supervisor.proc.poll() is None


# -- one daemon per address ---------------------------------------------------------------------


def _refused(daemon, listen: str) -> None:
    code = daemon.wait_exit(timeout=30)
    assert code not in (0, -signal.SIGKILL), daemon.describe("started on a taken address")
    assert listen in daemon.stderr(), daemon.describe("stderr does not name the taken address")


def _first_with_an_override(daemons, url: str, listen: str, env: dict[str, str]):
    """A daemon on `listen` whose every worker has seen an override only its database holds."""
    first = daemons.start(url, listen=listen, env=env)
    first.client().set_model("openai_model", "gpt-3.5-turbo", account_id="acct-first")
    readers = clients(listen, 16)
    assert wait_for(lambda: _serve_first_data(readers), timeout=15), first.describe("lagging")
    return first


def _serve_first_data(readers: list[ModelConfigClient]) -> bool:
    return all(c.resolve_for_account("acct-first").etag != "a0" for c in readers)


def test_a_second_supervisor_on_a_taken_address_exits_non_zero(daemons, tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    first = _first_with_an_override(daemons, f"sqlite:///{tmp_path}/a.db", listen, WORKERS)
    _refused(daemons.spawn(f"sqlite:///{tmp_path}/b.db", listen=listen, env=WORKERS), listen)
    assert first.proc.poll() is None, first.describe("the first daemon died")
    assert _serve_first_data(clients(listen, 16)), "new connections reach another database"


def test_a_single_process_daemon_on_a_supervisors_address_exits_non_zero(daemons, tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    first = _first_with_an_override(daemons, f"sqlite:///{tmp_path}/a.db", listen, WORKERS)
    _refused(daemons.spawn(f"sqlite:///{tmp_path}/b.db", listen=listen), listen)
    assert first.proc.poll() is None, first.describe("the first daemon died")
    assert _serve_first_data(clients(listen, 16)), "new connections reach another database"


def test_a_supervisor_on_a_single_process_daemons_address_exits_non_zero(daemons, tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    first = _first_with_an_override(daemons, f"sqlite:///{tmp_path}/a.db", listen, {})
    _refused(daemons.spawn(f"sqlite:///{tmp_path}/b.db", listen=listen, env=WORKERS), listen)
    assert first.proc.poll() is None, first.describe("the first daemon died")
    assert _serve_first_data(clients(listen, 16)), "new connections reach another database"
