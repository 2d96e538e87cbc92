"""Prometheus metrics: gRPC calls under go-grpc-prometheus's names, and the daemon's own state.

`grpc_server_started_total`, `grpc_server_handled_total` and `grpc_server_handling_seconds`
are named and labelled as go-grpc-prometheus names them, so existing dashboards chart them;
`modelconfig_*` say what the daemon holds and does. With --workers N the supervisor serves one
scrape for all workers (prometheus-client's multiprocess mode: each worker writes its values
to files in a directory that the supervisor reads), so prometheus_client must be imported only
after `use_multiprocess_directory`: it picks its storage when first imported.

The hot path pays for two counters and a histogram per call; resolutions per slot and source
are tallied in a plain dictionary and added to their counters once a second.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time

from ..domain.state import ResolvedView, State

log = logging.getLogger(__name__)

_MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# go-grpc-prometheus labels codes by their Go names.
_GO_CODES = {
    0: "OK",
    1: "Canceled",
    2: "Unknown",
    3: "InvalidArgument",
    4: "DeadlineExceeded",
    5: "NotFound",
    6: "AlreadyExists",
    7: "PermissionDenied",
    8: "ResourceExhausted",
    9: "FailedPrecondition",
    10: "Aborted",
    11: "OutOfRange",
    12: "Unimplemented",
    13: "Internal",
    14: "Unavailable",
    15: "DataLoss",
    16: "Unauthenticated",
}


def use_multiprocess_directory() -> str:
    """A fresh directory for the workers' values; call before prometheus_client is imported."""
    directory = tempfile.mkdtemp(prefix="modelconfigd-metrics-")
    os.environ[_MULTIPROCESS_ENV] = directory
    return directory


def remove_multiprocess_directory(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's gauges (its counters still count)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def serve(listen: str, metrics: Metrics | None = None) -> None:
    """Serve /metrics on `listen` (host:port) from a daemon thread: `metrics`' own, or with
    none, every worker's (multiprocess mode)."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    if metrics is not None:
        registry = metrics.registry
    else:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    host, _, port = listen.rpartition(":")
    try:
        start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    except OSError as exc:
        raise OSError(f"cannot serve metrics on {listen}: {exc.strerror}") from exc


class MethodMetrics:
    """One RPC's counters and histogram, bound to its labels once."""

    __slots__ = ("_handled", "_labels", "handled", "seconds", "started")

    def __init__(self, metrics: Metrics, labels: tuple[str, str, str]) -> None:
        self._labels = labels
        self._handled = metrics.handled
        self.started = metrics.started.labels(*labels)
        self.seconds = metrics.seconds.labels(*labels)
        self.handled = {0: self._handled.labels(*labels, "OK")}  # the others when first seen

    def done(self, started_at: float, code: int) -> None:
        self.seconds.observe(time.perf_counter() - started_at)
        counter = self.handled.get(code)
        if counter is None:
            counter = self.handled[code] = self._handled.labels(
                *self._labels, _GO_CODES.get(code, "Unknown")
            )
        counter.inc()


class Metrics:
    """The metrics of one serving process."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        # Its own registry, not the library's global one: tests run several daemons in one
        # process. With workers, values go to the shared directory whatever the registry.
        self.registry = registry = CollectorRegistry()
        grpc_labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter(
            "grpc_server_started_total",
            "RPCs started on the server.",
            grpc_labels,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, whatever their status.",
            [*grpc_labels, "grpc_code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "How long the server took to handle an RPC, until its status.",
            grpc_labels,
            registry=registry,
        )
        self.revision = Gauge(
            "modelconfig_revision",
            "The revision of the snapshot served.",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.accounts = Gauge(
            "modelconfig_accounts_with_overrides",
            "Accounts with at least one override, in the snapshot served.",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.lag = Gauge(
            "modelconfig_snapshot_lag_seconds",
            "How far the snapshot served trails the database: how long the changes it last "
            "applied had been committed, or how long it could not catch up.",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.resolutions = Counter(
            "modelconfig_resolutions_total",
            "Slots resolved, by slot and by the layer that gave the model.",
            ["slot", "source"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "modelconfig_auth_failures_total",
            "Calls refused by authentication.",
            ["reason"],
            registry=registry,
        )
        self._tally: dict[ResolvedView, int] = {}
        self._tally_lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._flush_until_closed, name="metrics-flush", daemon=True).start()

    def method(self, service: str, name: str, kind: str) -> MethodMetrics:
        return MethodMetrics(self, (kind, service, name))

    def published(self, state: State, lag: float) -> None:
        self.revision.set(state.revision)
        self.accounts.set(len(state.accounts))
        self.lag.set(lag)

    def refused(self, reason: str) -> None:
        self.auth_failures.labels(reason).inc()

    def resolved(self, view: ResolvedView) -> None:
        """Count one account's resolution of the view's slots (added to the counters later)."""
        with self._tally_lock:
            self._tally[view] = self._tally.get(view, 0) + 1

    def flush(self) -> None:
        with self._tally_lock:
            tally, self._tally = self._tally, {}
        totals: dict[tuple[str, str], int] = {}
        for view, count in tally.items():
            for resolved in view.slots:
                key = (resolved.slot, resolved.source.value)
                totals[key] = totals.get(key, 0) + count
        for (slot, source), count in totals.items():
            self.resolutions.labels(slot, source).inc(count)

    def close(self) -> None:
        self._stop.set()
        self.flush()

    def _flush_until_closed(self, interval: float = 1.0) -> None:
        while not self._stop.wait(interval):
            try:
                self.flush()
            except Exception:  # a metrics failure must never stop the daemon
                log.exception("flushing metrics failed")

