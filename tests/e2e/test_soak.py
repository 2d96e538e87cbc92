"""Load and soak: a real daemon held at about 80% of the capacity measured in the same run, with
a write every second and three WatchChanges subscribers, for one minute (ten under SOAK).

The load comes from two generator processes (tests/e2e/soak_load.py), so this test's GIL is
never the bottleneck. Figures go to the output (-s) and to build/soak/soak-{short,long}.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path

import pytest

from modelconfig import ModelConfigError
from tests.conftest import SOAK

from .test_watch import Watch, changes_of

pytestmark = pytest.mark.soak

REPO = Path(__file__).resolve().parents[2]
LOAD = Path(__file__).with_name("soak_load.py")
GENERATORS = 2  # processes; each drives 2 connections
CAPACITY_SECONDS = 5.0
CAPACITY_WARMUP = 1.0  # seconds of the capacity run not counted
# Calls in flight while capacity is measured: 8 per generator. Deeper queues let the daemon
# batch more per wake-up and report a capacity an open loop (calls spread over time, each
# paying its own wake-up) cannot hold on 2 cores; at 8 the measured capacity is one that 80%
# of is truly sustainable beside the generators on the same cores.
CAPACITY_CONCURRENCY = 8
LOAD_FRACTION = 0.8
DURATION = 600.0 if SOAK else 60.0
WINDOW = 60.0 if SOAK else 10.0
# RSS grows while caches, arenas and the change feed's window fill; the slope is taken after.
RSS_WARMUP = 120.0 if SOAK else 20.0
# MB per minute, as a leak per call: at ~2,500 calls/s, 3 MB/min is 20 bytes a call, 30 MB/min
# 200 bytes. Not tighter, because RSS also steps up whenever a neighbour on the CPUs slows the
# daemon: the calls queued meanwhile take memory (tens of KB each in grpcio) that the allocator
# keeps. Such a step of ~10 MB within the short form's 40 s after warm-up is ~15 MB/min, but
# over the long form's 8 minutes it is ~1 MB/min, well apart from a leak that keeps growing.
RSS_SLOPE_BOUND = 3.0 if SOAK else 30.0
# p99 (from when each call was due, so a queue cannot hide) of the last window against the
# first. A window's p99 for this is the median of the p99s of its six slices (10 s each in the
# long form): a neighbour's burst on the CPUs sets the p99 of the slices it falls in, and it
# took 3-5 s in some minutes of a run on a shared machine (seen: p50 1 s for half a minute
# while other test suites ran beside), but a daemon that degrades (a leak, a growing structure,
# longer GC pauses) does so in every slice. A daemon that stops keeping up with the offered
# rate builds a queue whose latency grows by seconds, past both the factor and the floor.
# Asserted in the long form only: the short form's windows are 10 s, as long as one burst.
SLICES = 6
P99_FACTOR = 4.0
P99_FLOOR_S = 1.0  # a last minute with p99 under a second is never a failure


def _generator(address: str, out: Path, *extra: str) -> subprocess.Popen:
    with open(f"{out}.stderr", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, str(LOAD), "--target", address, "--out", str(out), *extra],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # not in the daemon's nor pytest's session: fair CPU shares
        )


def _run_generators(procs: list[subprocess.Popen], outs: list[Path], timeout: float):
    """Wait for every generator; their summaries and every call's (due, latency, from sent)."""
    summaries, samples = [], array("d")
    try:
        for proc, out in zip(procs, outs, strict=True):
            code = proc.wait(timeout=timeout)
            stderr = Path(f"{out}.stderr").read_text()
            assert code == 0, f"load generator failed ({code}):\n{stderr}"
            summaries.append(json.loads(Path(f"{out}.json").read_text()))
            samples.frombytes(Path(f"{out}.bin").read_bytes())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return summaries, samples


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per minute."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return cov / var * 60.0


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class RssSampler(threading.Thread):
    """The daemon's RSS once a second, against time since `start`."""

    def __init__(self, pid: int, start: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.start_at = pid, start
        self.points: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            self.points.append((time.monotonic() - self.start_at, _rss_mb(self.pid)))


def test_load_at_80_percent_of_capacity_with_writes_and_subscribers(daemons, tmp_path):
    daemon = daemons.start(f"sqlite:///{tmp_path}/soak.db")
    client = daemon.client(timeout=30)
    for n in range(20):  # some of the accounts the load resolves have overrides
        client.set_model("openai_model", "gpt-4o-mini", account_id=f"soak-{n}")

    # -- capacity: closed loop ------------------------------------------------------------------
    outs = [tmp_path / f"capacity-{n}" for n in range(GENERATORS)]
    procs = [
        _generator(daemon.address, out, "--duration", str(CAPACITY_SECONDS),
                   "--concurrency", str(CAPACITY_CONCURRENCY))
        for out in outs
    ]
    summaries, samples = _run_generators(procs, outs, timeout=120)
    assert sum(s["failed"] for s in summaries) == 0, summaries
    counted = sum(1 for due in samples[0::3] if due >= CAPACITY_WARMUP)
    capacity = counted / (CAPACITY_SECONDS - CAPACITY_WARMUP)
    rate = LOAD_FRACTION * capacity

    # -- the soak: open loop at 80%, a write a second, three subscribers ------------------------
    watches = [Watch(daemon.client()._stub) for _ in range(3)]
    for watch in watches:
        watch.next(timeout=30)  # open, the first response in
    outs = [tmp_path / f"load-{n}" for n in range(GENERATORS)]
    start = time.monotonic() + 3.0  # every generator connected by then, all start together
    procs = [
        _generator(daemon.address, out, "--duration", str(DURATION), "--start", str(start),
                   "--rate", str(rate / GENERATORS))
        for out in outs
    ]
    sampler = RssSampler(daemon.proc.pid, start)
    sampler.start()
    writes: list[int] = []
    failed_writes: list[str] = []
    try:
        tick = 0
        while True:
            due = start + tick
            if due >= start + DURATION:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            model = ("gpt-3.5-turbo", "gpt-4o-mini")[tick % 2]
            try:
                reply = client.set_model("openai_model", model, account_id="soak-writer")
                writes.append(reply.revision)
            except ModelConfigError as exc:
                failed_writes.append(f"{type(exc).__name__}: {exc}")
            tick += 1
        summaries, samples = _run_generators(procs, outs, timeout=DURATION + 180)
    finally:
        sampler.stopped.set()
        sampler.join()
    seen = []
    try:
        for n, watch in enumerate(watches):
            received: list = []
            with contextlib.suppress(queue.Empty):  # the assertion below says what was missed
                received = watch.until(writes[-1], timeout=120) if writes else []
            seen.append({c.revision for c in changes_of(received)})
            assert watch.error is None and not watch.ended.is_set(), (
                f"subscriber {n} ended: {watch.error}")
    finally:
        for watch in watches:
            watch.close()

    # -- figures --------------------------------------------------------------------------------
    due_at, latency, from_sent = samples[0::3], samples[1::3], samples[2::3]
    slices: list[list[float]] = [[] for _ in range(int(DURATION // WINDOW) * SLICES)]
    for t, lat in zip(due_at, latency, strict=True):
        slices[min(len(slices) - 1, int(t / (WINDOW / SLICES)))].append(lat)
    windows = []
    for w in range(int(DURATION // WINDOW)):
        parts = [sorted(p) for p in slices[w * SLICES:(w + 1) * SLICES]]
        ordered = sorted(lat for p in parts for lat in p)
        windows.append({
            "from_s": w * WINDOW,
            "calls": len(ordered),
            "rate": len(ordered) / WINDOW,
            "p50_ms": round(_quantile(ordered, 0.50) * 1000, 2),
            "p99_ms": round(_quantile(ordered, 0.99) * 1000, 2),
            "p99_median_of_slices_ms": round(
                sorted(_quantile(p, 0.99) for p in parts)[SLICES // 2] * 1000, 2),
        })
    ok = sum(s["ok"] for s in summaries)
    failed = sum(s["failed"] for s in summaries) + len(failed_writes)
    after_warmup = [(t, mb) for t, mb in sampler.points if t >= RSS_WARMUP]
    slope = _slope_mb_per_min(after_warmup)
    rss = [mb for _, mb in sampler.points]
    missed = [sorted(set(writes) - s) for s in seen]
    sent_sorted = sorted(from_sent)
    figures = {
        "form": "long" if SOAK else "short",
        "duration_s": DURATION,
        "capacity_calls_per_s": round(capacity, 1),
        "target_rate_calls_per_s": round(rate, 1),
        "calls_sent": ok + sum(s["failed"] for s in summaries),
        "calls_ok": ok,
        "failed_calls": failed,
        "failures": [s["failures"] for s in summaries] + failed_writes[:5],
        "rate_held_calls_per_s": round(ok / DURATION, 1),
        "max_send_lag_s": round(max(s["max_send_lag_s"] for s in summaries), 3),
        "p50_ms": round(_quantile(sorted(latency), 0.50) * 1000, 2),
        "p99_ms": round(_quantile(sorted(latency), 0.99) * 1000, 2),
        "p99_from_sent_ms": round(_quantile(sent_sorted, 0.99) * 1000, 2),
        "windows": windows,
        "writes": len(writes),
        "subscribers": len(watches),
        "writes_missed_per_subscriber": [len(m) for m in missed],
        "rss_mb_first": round(rss[0], 1),
        "rss_mb_last": round(rss[-1], 1),
        "rss_mb_max": round(max(rss), 1),
        "rss_slope_mb_per_min": round(slope, 3),
        "rss_slope_after_s": RSS_WARMUP,
        "rss_slope_bytes_per_call": round(slope * 2**20 / 60 / max(ok / DURATION, 1), 2),
        "rss_samples": [(round(t, 1), round(mb, 2)) for t, mb in sampler.points],
        "load_average": os.getloadavg(),
    }
    out_dir = REPO / "build" / "soak"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"soak-{figures['form']}.json").write_text(json.dumps(figures, indent=1))
    print(f"\nsoak ({figures['form']}): capacity {capacity:.0f} calls/s, target {rate:.0f}/s, "
          f"held {figures['rate_held_calls_per_s']}/s for {DURATION:.0f} s; "
          f"{figures['calls_sent']} calls sent, {failed} failed; p50 {figures['p50_ms']} ms, "
          f"p99 {figures['p99_ms']} ms (from sent {figures['p99_from_sent_ms']} ms), "
          f"max send lag {figures['max_send_lag_s']} s")
    for w in windows:
        print(f"  window from {w['from_s']:>5.0f} s: {w['calls']:>7} calls "
              f"({w['rate']:.0f}/s), p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, "
              f"p99 median of {SLICES} slices {w['p99_median_of_slices_ms']} ms")
    missed_counts = figures["writes_missed_per_subscriber"]
    print(f"  {len(writes)} writes, each subscriber missed {missed_counts}; "
          f"RSS {figures['rss_mb_first']} -> {figures['rss_mb_last']} MB "
          f"(max {figures['rss_mb_max']}), slope after {RSS_WARMUP:.0f} s: "
          f"{slope:+.3f} MB/min (bound {RSS_SLOPE_BOUND}), "
          f"{figures['rss_slope_bytes_per_call']} bytes a call")

    assert failed == 0, figures["failures"]
    assert len(writes) >= DURATION - 1, "a write every second"
    assert all(not m for m in missed), f"every subscriber sees every write: missed {missed}"
    assert slope < RSS_SLOPE_BOUND, f"RSS grows {slope:.2f} MB/min under steady load"
    if SOAK:
        first, last = (windows[i]["p99_median_of_slices_ms"] / 1000 for i in (0, -1))
        assert last <= max(P99_FACTOR * first, P99_FLOOR_S), (
            f"p99 of the last minute {last * 1000:.0f} ms against the first's "
            f"{first * 1000:.0f} ms (medians of {SLICES} slices)"
        )
