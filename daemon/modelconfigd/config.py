"""Daemon settings: environment variables (MODELCONFIG_*), which command-line flags override."""

from __future__ import annotations

import argparse
import os
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


def parse(argv: list[str] | None = None) -> Settings:
    env = os.environ
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="modelconfigd", description="Serve the modelconfig gRPC API."
    )
    parser.add_argument(
        "--listen",
        default=env.get("MODELCONFIG_LISTEN", defaults.listen),
        help="host:port to listen on (MODELCONFIG_LISTEN; default %(default)s)",
    )
    parser.add_argument(
        "--database-url",
        default=env.get("MODELCONFIG_DATABASE_URL", defaults.database_url),
        help="sqlite:///path or postgresql://... (MODELCONFIG_DATABASE_URL; default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=_at_least_one,
        default=int(env.get("MODELCONFIG_WORKERS", defaults.workers)),
        help="processes serving the port, each with its own snapshot (MODELCONFIG_WORKERS; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(env.get("MODELCONFIG_THREADS", defaults.threads)),
        help="RPC worker threads (MODELCONFIG_THREADS; default %(default)s)",
    )
    parser.add_argument(
        "--poll-interval",
        type=_positive,
        default=float(env.get("MODELCONFIG_POLL_INTERVAL", defaults.poll_interval)),
        help="seconds between checks for other daemons' writes (default %(default)s)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=float(env.get("MODELCONFIG_DRAIN_SECONDS", defaults.drain_seconds)),
        help="seconds NOT_SERVING before the port closes on SIGTERM (default %(default)s)",
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=float(env.get("MODELCONFIG_GRACE_SECONDS", defaults.grace_seconds)),
        help="seconds in-flight calls may take after that (default %(default)s)",
    )
    parser.add_argument("--log-level", default=env.get("MODELCONFIG_LOG_LEVEL", defaults.log_level))
    args = parser.parse_args(argv)
    return Settings(
        listen=args.listen,
        database_url=args.database_url,
        threads=args.threads,
        workers=args.workers,
        poll_interval=args.poll_interval,
        drain_seconds=args.drain_seconds,
        grace_seconds=args.grace_seconds,
        log_level=args.log_level.upper(),
    )
