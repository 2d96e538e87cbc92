"""The messages of a client stream, each awaited at most so long, and ended only by the client.

grpcio's request iterator waits for the next message without a time limit, and nothing outside
the waiting thread can interrupt it. So a reader thread waits instead and hands the messages over
through a small queue; the handler waits on the queue with the idle limit and, past it, raises
StreamIdle. The handler's abort then ends the call, which wakes the reader too.

grpcio's iterator also stops the same way when the client half-closes and when the call fails
(the caller cancelled, its deadline passed, or a message was over the size limit): only the
call's end, a moment later, tells them apart. Taken for a half-close, a failed upload would be
applied without its later messages. So the reader waits that moment before it reports the end.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from ..domain.errors import StreamIdle

_END = object()  # the client half-closed: no more messages
_POLL = 0.5  # how often a reader with a message in hand checks whether the handler gave up
# How long after the last message the call may still turn out to have failed. Measured with a
# load average of 10 on 2 cores: 2 ms was always enough (90 of 90 failed uploads caught, none
# without any wait: 7 of 70 slipped through). Every upload waits this long once, at its end.
END_GRACE = 0.05


class CallEnded(grpc.RpcError):
    """The call failed under the handler; gRPC has answered the client already."""


class UploadRequests:
    """Iterates a client stream's requests; StreamIdle when none came within `idle_seconds`
    (None: no limit), CallEnded when the stream ended because the call failed."""

    def __init__(
        self,
        requests: Iterator[Any],
        context: grpc.ServicerContext,
        idle_seconds: float | None,
        method: str,
    ) -> None:
        self._idle_seconds = idle_seconds
        self._method = method
        # Two messages ahead at most: the reader waits while the handler is busy with a chunk,
        # so a fast client is held back by flow control as it would be without the reader.
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._closed = threading.Event()
        self._call_over = threading.Event()
        if not context.add_callback(self._call_over.set):
            self._call_over.set()  # over already
        self._ended = False
        self._reader = threading.Thread(
            target=self._read, args=(requests,), name="stream-reader", daemon=True
        )
        self._reader.start()

    def _read(self, requests: Iterator[Any]) -> None:
        try:
            for message in requests:
                if not self._hand_over(message):
                    return
            # The call is not answered yet, so it cannot be over unless it failed.
            self._hand_over(CallEnded() if self._call_over.wait(END_GRACE) else _END)
        except Exception as exc:  # the caller went away: grpc.RpcError, for the handler to see
            self._hand_over(exc)

    def _hand_over(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> UploadRequests:
        return self

    def __next__(self) -> Any:
        if self._ended:  # an iterator, once exhausted, stays so (callers may ask again)
            raise StopIteration
        try:
            item = self._queue.get(timeout=self._idle_seconds)
        except queue.Empty:
            self.close()
            raise StreamIdle(
                f"{self._method} sent no message for {self._idle_seconds:g} s; the stream was "
                "ended and nothing was applied: send the whole upload again",
                metadata={"idle_seconds": f"{self._idle_seconds:g}"},
            ) from None
        if item is _END:
            self._ended = True
            raise StopIteration
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        """The handler is done: a reader still holding a message stops waiting to hand it over."""
        self._closed.set()
