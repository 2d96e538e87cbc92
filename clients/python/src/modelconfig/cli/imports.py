"""modelconfigctl import: account overrides from a CSV or JSON Lines file, all or nothing."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from google.protobuf.message import Message

from .._client import ModelConfigClient
from ..v1 import model_config_service_pb2 as api
from . import output as fmt
from . import override_files
from .parsing import command

T = TypeVar("T")


class Progress:
    """A one-line progress bar on stderr, redrawn at most every 0.2 s; silent unless a terminal."""

    def __init__(
        self,
        total: int,
        enabled: bool,
        doing: str = "sending",
        then: str = "applying (one transaction)...",
    ) -> None:
        self._total, self._enabled = max(total, 1), enabled
        self._doing, self._then = doing, then
        self._started = self._drawn = time.monotonic()

    def wrap(self, records: Iterable[T]) -> Iterator[T]:
        done = 0
        for done, record in enumerate(records, start=1):
            if self._enabled and time.monotonic() - self._drawn > 0.2:
                self._draw(done)
            yield record
        if self._enabled:
            self._draw(done)
            print(f"\n{self._then}" if self._then else "", file=sys.stderr, flush=True)

    def _draw(self, done: int) -> None:
        self._drawn = time.monotonic()
        filled = int(30 * done / self._total)
        print(
            f"\r{self._doing} [{'#' * filled}{' ' * (30 - filled)}] {done:,}/{self._total:,} rows "
            f"{self._drawn - self._started:.1f}s",
            end="",
            file=sys.stderr,
            flush=True,
        )


def _import(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    path = Path(args.file)
    kind = override_files.file_format(path, args.format)
    # A first pass finds malformed lines before anything is sent, and counts for the bar.
    total = sum(1 for _ in override_files.read_records(path, kind))
    progress = Progress(total, enabled=args.progress or sys.stderr.isatty())
    records = progress.wrap(override_files.read_records(path, kind))
    return client.import_overrides(
        records, validate_only=args.validate_only, reason=args.reason, timeout=args.timeout
    )


def summary(response: api.ImportOverridesResponse, validate_only: bool) -> str:
    what = f"{fmt.plural(response.rows, 'override')} for {fmt.plural(response.accounts, 'account')}"
    if validate_only:
        return f"would import {what}"
    return f"imported {what}: {response.changed_rows:,} changed"


def _show(response: api.ImportOverridesResponse, args: argparse.Namespace) -> str:
    return f"{summary(response, args.validate_only)}\n{fmt.footer(revision=response.revision)}"


def add_commands(subparsers) -> None:
    importing = command(
        subparsers,
        "import",
        _import,
        _show,
        "set account overrides from a CSV (account_id,slot,model) or JSON Lines file, "
        "all or nothing",
    )
    importing.add_argument("file", metavar="FILE", help="a .csv or .jsonl file")
    importing.add_argument("--format", choices=("csv", "jsonl"), help="override the file's suffix")
    importing.add_argument(
        "--validate-only", action="store_true", help="check every row and change nothing"
    )
    importing.add_argument(
        "--progress", action="store_true", help="draw the progress bar even when not a terminal"
    )
