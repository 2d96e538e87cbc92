"""Live configuration: in-process resolution (`modelconfig.LocalResolver`) against the
ResolveForAccount RPC, and how soon a write reaches another daemon.

Run by bench/run.py against a daemon it started: per-call latency of the RPC through the
Python client and of `resolve()` in both account modes, the time and memory a resolver takes
to load, and how soon an acknowledged write is visible in it.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable

import grpc

from modelconfig import LocalResolver, ModelConfigClient
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import model_config_service_pb2_grpc as api_grpc


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _latencies_us(call: Callable[[str], object], accounts: list[str], calls: int) -> list[float]:
    clock = time.perf_counter_ns
    timings = []
    for index in range(calls):
        account = accounts[index % len(accounts)]
        started = clock()
        call(account)
        timings.append((clock() - started) / 1000)
    return timings


def _summary(timings: list[float]) -> dict:
    ordered = sorted(timings)
    return {
        "calls": len(ordered),
        "p50_us": ordered[len(ordered) // 2],
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "mean_us": statistics.fmean(ordered),
    }


def measure(target: str, accounts: list[str], *, rpc_calls: int, local_calls: int, writes: int):
    """Every figure of the section, against the daemon at `target` (idle but for this)."""
    result: dict = {"accounts_sampled": len(accounts)}
    with ModelConfigClient(target) as client:
        _latencies_us(client.resolve_for_account, accounts, 200)  # warm-up
        result["rpc"] = _summary(_latencies_us(client.resolve_for_account, accounts, rpc_calls))
        for mode in ("all", "on_demand"):
            gc.collect()
            before = _rss_mb()
            started = time.perf_counter()
            resolver = LocalResolver(target, accounts=mode, start_timeout=600)
            loaded = time.perf_counter() - started
            try:
                first = _summary(_latencies_us(resolver.resolve, accounts, len(accounts)))
                timings = _latencies_us(resolver.resolve, accounts, local_calls)
                figures = _summary(timings)
                figures.update(
                    load_s=loaded,
                    rss_mb=_rss_mb() - before,
                    accounts_held=resolver.accounts_held,
                    first_call=first,
                    x_rpc_p50=result["rpc"]["p50_us"] / figures["p50_us"],
                    x_rpc_p99=result["rpc"]["p99_us"] / figures["p99_us"],
                )
                same = all(
                    resolver.resolve(a) == client.resolve_for_account(a) for a in accounts[:50]
                )
                figures["same_answers"] = same
                if mode == "all":
                    figures["visible_ms"] = _propagation(client, resolver, accounts[0], writes)
                result[mode] = figures
            finally:
                resolver.close()
                del resolver
    return result


def _propagation(client, resolver: LocalResolver, account: str, writes: int) -> dict:
    """Milliseconds from each write's acknowledgment until the resolver has its revision."""
    delays = []
    models = ("gpt-3.5-turbo", "gpt-4o-mini")
    for index in range(writes):
        revision = client.set_model(
            "openai_model", models[index % 2], account_id=account, reason="bench"
        ).revision
        acknowledged = time.perf_counter()
        if not resolver.wait_for_revision(revision, timeout=10):
            delays.append(10_000.0)
            continue
        delays.append((time.perf_counter() - acknowledged) * 1000)
        time.sleep(0.02)
    ordered = sorted(delays)
    return {
        "writes": len(ordered),
        "p50_ms": ordered[len(ordered) // 2],
        "max_ms": ordered[-1],
    }


def replica_lag(writer: str, replica: str, writes: int) -> dict:
    """Milliseconds from each write's acknowledgment by `writer` until `replica`'s change feed
    delivers it (both daemons on one database)."""
    seen: dict[int, float] = {}
    arrived = threading.Condition()
    channel = grpc.insecure_channel(replica)
    stream = api_grpc.ModelConfigServiceStub(channel).WatchChanges(api.WatchChangesRequest())

    def follow() -> None:
        try:
            for response in stream:
                now = time.perf_counter()
                with arrived:
                    for change in response.changes:
                        seen[change.revision] = now
                    arrived.notify_all()
        except grpc.RpcError:
            pass

    threading.Thread(target=follow, daemon=True).start()
    delays = []
    models = ("gpt-3.5-turbo", "gpt-4o-mini")
    try:
        with ModelConfigClient(writer) as client:
            time.sleep(0.5)  # the watch is open
            for index in range(writes):
                revision = client.set_model(
                    "openai_model", models[index % 2], account_id="bench-lag"
                ).revision
                acknowledged = time.perf_counter()
                with arrived:
                    arrived.wait_for(lambda r=revision: r in seen, timeout=10)
                delays.append((seen.get(revision, acknowledged + 10) - acknowledged) * 1000)
                time.sleep(0.05)
    finally:
        stream.cancel()
        channel.close()
    ordered = sorted(delays)
    return {"writes": len(ordered), "p50_ms": ordered[len(ordered) // 2], "max_ms": ordered[-1]}
