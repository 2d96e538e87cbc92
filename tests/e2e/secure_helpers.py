"""Helpers for the security and observability tests: daemons with flags, statuses, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from . import process_helpers
from .process_helpers import DaemonProcess, Daemons

T = TypeVar("T")
DEADLINE = 15.0  # generous: a loaded machine, never a speed check


def spawn_with_args(
    daemons: Daemons, database_url: str, args: Sequence[str], **kwargs
) -> DaemonProcess:
    """Daemons.spawn with command-line flags after the command (it takes only variables)."""
    original = process_helpers.daemon_command
    process_helpers.daemon_command = lambda: [*original(), *args]
    try:
        return daemons.spawn(database_url, **kwargs)
    finally:
        process_helpers.daemon_command = original


def wait_for(predicate: Callable[[], T], timeout: float = DEADLINE, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy or `timeout` passes; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def refusal(error: grpc.RpcError | None) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """A failed call's code, and the reason and metadata of its google.rpc.ErrorInfo."""
    if error is None:
        return grpc.StatusCode.OK, "", {}
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return error.code(), info.reason, dict(info.metadata)
    return error.code(), "", {}


def exit_message(daemon: DaemonProcess, timeout: float = 30.0) -> tuple[int, str]:
    """The exit code of a daemon expected to refuse to start, and its stderr."""
    code = daemon.wait_exit(timeout=timeout)
    return code, daemon.stderr()
