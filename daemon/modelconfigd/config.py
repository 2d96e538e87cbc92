"""Daemon settings: environment variables (MODELCONFIG_*), which command-line flags override."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass

from .adapters.database import DEFAULT_URL


@dataclass(frozen=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    database_url: str = DEFAULT_URL
    # Few threads on purpose: they share one GIL, and in the benchmark 2 threads answered about
    # 20% more resolves per second than 8 (`make bench`). A write or an import holds one.
    threads: int = 2
    # Processes serving one port (SO_REUSEPORT): one process uses one core (the GIL).
    workers: int = 1
    # How often to look for writes made by other daemons on the same database.
    poll_interval: float = 0.5
    # How long health says NOT_SERVING before the port closes, so probes notice first.
    drain_seconds: float = 1.0
    # How long in-flight calls may take to finish after that.
    grace_seconds: float = 10.0
    log_level: str = "INFO"


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


# flag, Settings field, type, help. Each flag's default is its MODELCONFIG_* variable (as text,
# so argparse checks it with the flag's type) or else the Settings default.
_OPTIONS: tuple[tuple[str, str, Callable[[str], object], str], ...] = (
    ("--listen", "listen", str, "host:port to listen on"),
    ("--database-url", "database_url", str, "sqlite:///path or postgresql://..."),
    ("--workers", "workers", _at_least_one, "processes serving the port, each with its snapshot"),
    ("--threads", "threads", _at_least_one, "RPC threads per process"),
    (
        "--poll-interval",
        "poll_interval",
        _positive,
        "seconds between checks for other daemons' writes",
    ),
    (
        "--drain-seconds",
        "drain_seconds",
        float,
        "seconds NOT_SERVING before the port closes on SIGTERM",
    ),
    ("--grace-seconds", "grace_seconds", float, "seconds in-flight calls may take after that"),
    ("--log-level", "log_level", str.upper, "DEBUG, INFO, WARNING or ERROR"),
)


def parse(argv: list[str] | None = None) -> Settings:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="modelconfigd", description="Serve the modelconfig gRPC API."
    )
    for flag, field, kind, help_text in _OPTIONS:
        variable = "MODELCONFIG_" + field.upper()
        parser.add_argument(
            flag,
            dest=field,
            type=kind,
            default=os.environ.get(variable, str(getattr(defaults, field))),
            help=f"{help_text} ({variable}; default %(default)s)",
        )
    return Settings(**vars(parser.parse_args(argv)))
