"""Run the real `modelconfigd` as a subprocess: start it, learn its port, signal it, clean up.

Each daemon runs in its own session (process group), writes stderr to a file (so a full pipe can
never stall it) and is killed with its group at teardown if a test left it running.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelconfig import ModelConfigClient

SERVICE_NAME = "modelconfig.v1.ModelConfigService"
SERVING_LINE = re.compile(r"^modelconfigd serving on (?P<host>\S+):(?P<port>\d+) "
                          r"\(revision (?P<revision>\d+)(, (?P<workers>\d+) workers)?\)$")
# Printed before the serving line when --http-listen is set.
HTTP_LINE = re.compile(r"^modelconfigd serving JSON over HTTP on (?P<url>\S+):(?P<port>\d+)$")
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 15.0


def daemon_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("modelconfigd")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "modelconfigd.entrypoints.main"]


def free_port() -> int:
    """A port nothing listens on right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class DaemonProcess:
    """One `modelconfigd` subprocess; `port` and `revision` come from its serving line."""

    proc: subprocess.Popen[str]
    stderr_path: Path
    name: str
    port: int = 0
    revision: int = -1
    http_port: int = 0  # the JSON API's, when served
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _channels: list[grpc.Channel] = field(default_factory=list)

    # -- start-up ------------------------------------------------------------------------------

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_serving(self, timeout: float = START_TIMEOUT) -> DaemonProcess:
        """Block until the serving line is printed; fail with the daemon's stderr otherwise."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(self.describe(f"no serving line within {timeout}s", seen))
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=EXIT_TIMEOUT)
                raise AssertionError(self.describe(
                    f"exited with {self.proc.returncode} before serving", seen))
            seen.append(line)
            http = HTTP_LINE.match(line)
            if http:
                self.http_port = int(http["port"])
            match = SERVING_LINE.match(line)
            if match:
                self.port = int(match["port"])
                self.revision = int(match["revision"])
                return self

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self, problem: str, stdout: list[str] | None = None) -> str:
        out = "\n".join(stdout or [])
        return (f"daemon {self.name} (pid {self.proc.pid}): {problem}\n"
                f"--- stdout ---\n{out}\n--- stderr ---\n{self.stderr()}")

    # -- talking to it -------------------------------------------------------------------------

    @property
    def address(self) -> str:
        assert self.port, "not serving yet"
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        channel = grpc.insecure_channel(self.address)
        self._channels.append(channel)
        return channel

    def client(self, timeout: float = 10.0) -> ModelConfigClient:
        return ModelConfigClient(channel=self.channel(), timeout=timeout)

    def health(self, service: str = "", channel: grpc.Channel | None = None) -> int:
        """The grpc.health.v1 Check status for `service`."""
        stub = health_pb2_grpc.HealthStub(channel or self.channel())
        request = health_pb2.HealthCheckRequest(service=service)
        return stub.Check(request, timeout=5).status

    # -- stopping ------------------------------------------------------------------------------

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the daemon's whole process group and reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=EXIT_TIMEOUT)

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(self.describe(f"still running {timeout}s later")) from None

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Daemons:
    """Starts daemons for one test and kills whatever is left at teardown."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._started: list[DaemonProcess] = []

    def spawn(
        self,
        database_url: str,
        *,
        listen: str = "127.0.0.1:0",
        drain_seconds: float = 0.5,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> DaemonProcess:
        """Popen a daemon without waiting for it (see DaemonProcess.wait_serving)."""
        name = f"d{len(self._started) + 1}"
        stderr_path = self._workdir / f"{name}.stderr"
        # Only this test's settings: none leak in from the environment the tests run in.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("MODELCONFIG_")}
        full_env = {
            **inherited,
            "MODELCONFIG_LISTEN": listen,
            "MODELCONFIG_DATABASE_URL": database_url,
            "MODELCONFIG_DRAIN_SECONDS": str(drain_seconds),
            "MODELCONFIG_GRACE_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        with open(stderr_path, "w") as stderr:
            proc = subprocess.Popen(
                daemon_command(),
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,
                cwd=cwd,
            )
        daemon = DaemonProcess(proc, stderr_path, name)
        self._started.append(daemon)
        threading.Thread(target=daemon._pump_stdout, name=f"{name}-stdout", daemon=True).start()
        return daemon

    def start(self, database_url: str, **kwargs) -> DaemonProcess:
        """Spawn a daemon and wait until it is serving."""
        return self.spawn(database_url, **kwargs).wait_serving()

    def close(self) -> None:
        errors: list[BaseException] = []
        for daemon in self._started:
            try:
                daemon.close()
            except BaseException as exc:  # keep killing the others
                errors.append(exc)
        self._started.clear()
        if errors:
            raise errors[0]
