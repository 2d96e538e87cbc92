"""Prometheus metrics: gRPC calls under go-grpc-prometheus's names, and the daemon's own state.

`grpc_server_started_total`, `grpc_server_handled_total` and `grpc_server_handling_seconds`
are named and labelled as go-grpc-prometheus names them, so existing dashboards chart them;
`modelconfig_*` say what the daemon holds and does. With --workers N the supervisor serves one
scrape for all workers (prometheus-client's multiprocess mode: each worker writes its values
to files in a directory that the supervisor reads), so prometheus_client must be imported only
after `use_multiprocess_directory`: it picks its storage when first imported.

The hot path pays for two list appends per call; the counters, the histogram and the
resolutions per slot and source are added up from them once a second and before each scrape.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from time import perf_counter

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


def _take(items: list) -> list:
    """The items appended so far, removed from `items`. Appends from other threads may come at
    any moment: under the GIL a copy and a deletion are each atomic, and appends only ever go
    to the end, so exactly the items copied are deleted and none is lost or taken twice."""
    count = len(items)
    taken = items[:count]
    del items[:count]
    return taken


class MethodMetrics:
    """One RPC's calls, tallied in plain numbers under one lock and added to its Prometheus
    counters and histogram by `flush` (once a second, and before each scrape of one process).

    A Prometheus counter or histogram update per call costs a few locked updates, and with
    workers a write to a shared file each: too much for the hot path (`make bench` measures it).
    The hot path's calls only append their duration and view to two lists (`note_ok`), which
    costs no Python frame at all; the flush does the rest.
    """

    __slots__ = (
        "_bounds",
        "_children",
        "_handled",
        "_labels",
        "buckets",
        "durations",
        "handled",
        "lock",
        "resolved",
        "seconds",
        "started",
        "views",
    )

    def __init__(self, metrics: Metrics, labels: tuple[str, str, str]) -> None:
        self._labels = labels
        self._handled = metrics.handled
        self._children = (metrics.started.labels(*labels), metrics.seconds.labels(*labels))
        self._bounds = self._children[1]._upper_bounds  # the histogram's own buckets
        self.lock = threading.Lock()
        self.started = 0
        self.handled: dict[int, int] = {}  # status code -> calls
        self.buckets = [0] * len(self._bounds)
        self.seconds = 0.0
        self.resolved: dict[ResolvedView, int] = {}  # view -> accounts that resolved to it
        # The hot path's OK calls: how long each took, and the view it resolved to.
        self.durations: list[float] = []
        self.views: list[ResolvedView] = []

    def start(self) -> float:
        with self.lock:
            self.started += 1
        return perf_counter()

    def done(self, started_at: float, code: int) -> None:
        elapsed = perf_counter() - started_at
        index = bisect_left(self._bounds, elapsed)  # the first bucket it falls in
        with self.lock:
            self.handled[code] = self.handled.get(code, 0) + 1
            self.buckets[index] += 1
            self.seconds += elapsed

    def note_ok(self) -> tuple[Callable[[float], None], Callable[[ResolvedView], None]]:
        """For the hot path: the two appends that tally a call that ended OK (its duration in
        seconds, and the view it resolved one account to); they count as started too."""
        return self.durations.append, self.views.append

    def flush(self) -> dict[ResolvedView, int]:
        """Add the tallies to the Prometheus metrics; returns the views resolved meanwhile."""
        with self.lock:
            started, handled, buckets, seconds, resolved = (
                self.started,
                self.handled,
                self.buckets,
                self.seconds,
                self.resolved,
            )
            self.started, self.handled, self.seconds, self.resolved = 0, {}, 0.0, {}
            self.buckets = [0] * len(self._bounds)
        durations = _take(self.durations)
        if durations:
            started += len(durations)
            handled[0] = handled.get(0, 0) + len(durations)
            seconds += sum(durations)
            bounds = self._bounds
            for elapsed in durations:
                buckets[bisect_left(bounds, elapsed)] += 1
        for view, count in Counter(_take(self.views)).items():
            resolved[view] = resolved.get(view, 0) + count
        started_counter, histogram = self._children
        if started:
            started_counter.inc(started)
        for code, count in handled.items():
            self._handled.labels(*self._labels, _GO_CODES.get(code, "Unknown")).inc(count)
        if any(buckets):
            # prometheus-client keeps a histogram as one value per bucket and the sum (what
            # observe() adds to); adding the tallies there keeps its own exposition.
            for index, count in enumerate(buckets):
                if count:
                    histogram._buckets[index].inc(count)
            histogram._sum.inc(seconds)
        return resolved


class Metrics:
    """The metrics of one serving process."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        # Its own registry, not the library's global one: tests run several daemons in one
        # process. With workers, values go to the shared directory whatever the registry.
        self.registry = registry = CollectorRegistry()
        self._tally: dict[ResolvedView, int] = {}
        self._tally_lock = threading.Lock()
        self._methods: list[MethodMetrics] = []
        self._flush_lock = threading.Lock()
        # Registered first, so collected first: a scrape of this process flushes the tallies.
        registry.register(_FlushFirst(self))
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
        self.database_up = Gauge(
            "modelconfig_database_up",
            "1 while this daemon reaches its database, 0 while it does not: then writes get "
            "UNAVAILABLE and reads are served from the snapshot.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.database_up.set(1)
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
        self._stop = threading.Event()
        threading.Thread(target=self._flush_until_closed, name="metrics-flush", daemon=True).start()

    def method(self, service: str, name: str, kind: str) -> MethodMetrics:
        method = MethodMetrics(self, (kind, service, name))
        self._methods.append(method)
        return method

    def published(self, state: State, lag: float) -> None:
        self.revision.set(state.revision)
        self.accounts.set(len(state.accounts))
        self.lag.set(lag)

    def storage(self, up: bool) -> None:
        self.database_up.set(1 if up else 0)

    def refused(self, reason: str) -> None:
        self.auth_failures.labels(reason).inc()

    def resolved(self, view: ResolvedView) -> None:
        """Count one account's resolution of the view's slots (added to the counters later)."""
        with self._tally_lock:
            self._tally[view] = self._tally.get(view, 0) + 1

    def flush(self) -> None:
        # One flush at a time: the scrape's and the timer's would both take the same tallies.
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        tallies = [method.flush() for method in self._methods]
        with self._tally_lock:
            tallies.append(self._tally)
            self._tally = {}
        totals: dict[tuple[str, str], int] = {}
        for view, count in (pair for tally in tallies for pair in tally.items()):
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


class _FlushFirst:
    """A collector of nothing that flushes the tallies, so a scrape shows every finished call."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self):
        self._metrics.flush()
        return []
