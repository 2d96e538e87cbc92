"""A ResolveForAccount load generator run as its own process (so the test's GIL never limits it).

Closed loop (`--concurrency N`): N calls always in flight, back to back, for the duration: the
calls completed measure capacity. Open loop (`--rate R`): call i is due at start + i/R whatever
the answers (latency counts from when a call was due, so a slow server cannot hide its queue),
with at most `--max-in-flight` outstanding: beyond that the generator waits and the rate it held
shows it. Writes a summary (JSON) and every call's (due offset, latency from due, latency from
sent; seconds) as float64 triples.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from array import array
from collections import Counter

import grpc

from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import model_config_service_pb2_grpc as api_grpc

DEADLINE_S = 30.0  # a call this late is a failure, not a slow answer
TICK_S = 0.002  # calls due within a tick are sent together: fewer wake-ups per call


class Recorder:
    """Every call's due offset and latency, and the failures by status code."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.samples = array("d")
        self.failures: Counter[str] = Counter()
        self.first_failures: list[str] = []
        self.max_send_lag = 0.0

    async def call(self, stub, request, due: float) -> None:
        sent = time.monotonic()
        self.max_send_lag = max(self.max_send_lag, sent - due)
        try:
            await stub.ResolveForAccount(request, timeout=DEADLINE_S)
        except grpc.aio.AioRpcError as error:
            self.failures[error.code().name] += 1
            if len(self.first_failures) < 5:
                self.first_failures.append(f"{error.code().name}: {error.details()}")
            return
        done = time.monotonic()
        self.samples.extend((due - self.start, done - due, done - sent))


def _requests(accounts: int) -> list[api.ResolveForAccountRequest]:
    return [
        api.ResolveForAccountRequest(account_id=f"soak-{i}", slots=["openai_model"])
        for i in range(accounts)
    ]


async def closed_loop(stub, rec: Recorder, concurrency: int, until: float, requests) -> None:
    async def worker(offset: int) -> None:
        i = offset
        while time.monotonic() < until:
            await rec.call(stub, requests[i % len(requests)], time.monotonic())
            i += concurrency

    await asyncio.gather(*(worker(n) for n in range(concurrency)))


async def open_loop(
    stub, rec: Recorder, rate: float, until: float, max_in_flight: int, requests
) -> None:
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task] = set()

    async def one(request, due: float) -> None:
        try:
            await rec.call(stub, request, due)
        finally:
            slots.release()

    i = 0
    while True:
        due = rec.start + i / rate
        if due >= until:
            break
        wait = due - time.monotonic()
        if wait > 0:  # else behind: send what is due at once, without a sleep each
            await asyncio.sleep(max(wait, TICK_S))
        while due <= time.monotonic() and due < until:
            await slots.acquire()
            task = asyncio.create_task(one(requests[i % len(requests)], due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            due = rec.start + i / rate
    if tasks:
        await asyncio.gather(*tasks)


async def main(args: argparse.Namespace) -> None:
    # Several connections, as several backend processes would have; one HTTP/2 connection
    # would serialize the frames of every call through one socket.
    channels = [
        grpc.aio.insecure_channel(args.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(args.channels)
    ]
    stubs = [api_grpc.ModelConfigServiceStub(c) for c in channels]
    requests = _requests(args.accounts)
    for stub in stubs:  # connected before the clock starts
        await stub.ResolveForAccount(requests[0], timeout=DEADLINE_S)
    now = time.monotonic()
    start = args.start if args.start > now else now
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    rec = Recorder(start)
    until = start + args.duration
    share = len(stubs)
    if args.rate:
        await asyncio.gather(*(
            open_loop(s, rec, args.rate / share, until, args.max_in_flight // share, requests)
            for s in stubs
        ))
    else:
        await asyncio.gather(*(
            closed_loop(s, rec, args.concurrency // share, until, requests) for s in stubs
        ))
    ended = time.monotonic()
    for channel in channels:
        await channel.close()
    with open(args.out + ".bin", "wb") as out:
        rec.samples.tofile(out)
    summary = {
        "ok": len(rec.samples) // 3,
        "failed": sum(rec.failures.values()),
        "failures": dict(rec.failures),
        "first_failures": rec.first_failures,
        "seconds": ended - start,
        "max_send_lag_s": rec.max_send_lag,
    }
    with open(args.out + ".json", "w") as out:
        json.dump(summary, out)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--out", required=True, help="path prefix of the .json and .bin files")
    parser.add_argument("--start", type=float, default=0.0, help="time.monotonic() to start at")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0, help="calls per second; 0: closed")
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=100)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
