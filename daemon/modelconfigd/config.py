"""Daemon settings: environment variables (MODELCONFIG_*), which command-line flags override."""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from .adapters.database import DEFAULT_URL
from .service_layer.change_feed import KeepPolicy


@dataclass(frozen=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    database_url: str = DEFAULT_URL
    # Few threads on purpose: they share one GIL, and in the benchmark 2 threads answered about
    # 20% more resolves per second than 8 (`make bench`). A write or an import holds one.
    threads: int = 2
    # Processes serving one port (SO_REUSEPORT): one process uses one core (the GIL).
    workers: int = 1
    # How often to look for writes made by other daemons on the same database; None: 0.05 s
    # on SQLite (the poll is how its other processes learn of a write, and a cheap read of a
    # local file), 0.5 s on PostgreSQL (a safety net: LISTEN/NOTIFY tells at once).
    poll_interval: float | None = None
    # How long health says NOT_SERVING before the port closes, so probes notice first.
    drain_seconds: float = 1.0
    # How long in-flight calls may take to finish after that.
    grace_seconds: float = 10.0
    log_level: str = "INFO"
    # One line per record, as text or as JSON objects for log pipelines.
    log_format: str = "text"
    # A TOML file of callers (token digests or certificate names) and their roles; without
    # one, every caller may do everything, which is why the daemon then serves only loopback.
    tokens_file: str = ""
    # PEM files: the server's certificate and key serve TLS; a client CA also requires (and
    # verifies) client certificates.
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # Serve a non-loopback address without TLS and authentication anyway.
    insecure: bool = False
    # host:port of the Prometheus /metrics endpoint; empty: no metrics.
    metrics_listen: str = ""
    # host:port of the JSON API over HTTP and the console (see entrypoints/http_api.py); empty:
    # none. It serves the same TLS and checks the same tokens as the gRPC port.
    http_listen: str = ""
    # Which changes WatchChanges can replay: a number of revisions, or a duration (30s, 15m,
    # 12h, 7d). Older start revisions are answered REVISION_COMPACTED.
    changes_keep: str = "100000"
    # How long the audit trail (ListChanges, RevertChange) keeps a change, as revisions or a
    # duration; empty: for ever. Pruned changes can no longer be replayed either.
    audit_keep: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def effective_poll_interval(self) -> float:
        if self.poll_interval is not None:
            return self.poll_interval
        return 0.05 if self.database_url.startswith("sqlite:") else 0.5


_MAX_SECONDS = 3600.0  # no wait the daemon takes is longer; time.sleep overflows on inf


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan  # refused by every range check below, with the caller's message


def _positive(text: str) -> float:
    value = _number(text)
    if not 0 < value <= _MAX_SECONDS:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of seconds (at most {_MAX_SECONDS:g})"
        )
    return value


def _not_negative(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= _MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds from 0 to {_MAX_SECONDS:g}"
        )
    return value


def _poll_interval(text: str) -> float | None:
    return None if text == "auto" else _positive(text)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level: {', '.join(_LOG_LEVELS)}")
    return level


def _address(text: str) -> str:
    """HOST:PORT, an IPv6 host in brackets ([::1]:50051); port 0 picks a free port."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        problem = _ipv6_problem(host, rest) or _port_problem(rest[1:])
    elif text.count(":") > 1:
        problem = "an IPv6 address goes in brackets, e.g. [::1]:50051"
    elif ":" not in text:
        problem = _half_address_problem(text)
    else:
        host, _, port = text.partition(":")
        problem = _port_problem(port) if host else "no host: use HOST:PORT, e.g. 127.0.0.1:50051"
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


def _half_address_problem(text: str) -> str:
    """What is wrong with an address that has no colon: a host alone, or a port alone."""
    if not text:
        return "empty: use HOST:PORT, e.g. 127.0.0.1:50051"
    if text.isdigit():
        return f"no host: use HOST:PORT, e.g. 127.0.0.1:{text}"
    # grpc would take a host alone and serve on port 443.
    return f"no port: use HOST:PORT, e.g. {text}:50051"


def _ipv6_problem(host: str, rest: str) -> str | None:
    if not rest.startswith(":"):
        return "use [IPV6]:PORT, e.g. [::1]:50051"
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return f"{host!r} in brackets is not an IPv6 address"
    return None


def _port_problem(port: str) -> str | None:
    if not port:
        return "no port: use HOST:PORT, e.g. 127.0.0.1:50051"
    # isascii: int() would also take "+1", " 1" and non-ASCII digits. grpc would serve a port
    # out of range on a random port instead.
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        return f"port {port!r} is not a number from 1 to 65535 (or 0: pick a free port)"
    return None


def _optional_address(text: str) -> str:
    return text and _address(text)


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a yes/no value (1 or 0)")


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def keep_policy(text: str) -> KeepPolicy:
    """`100000` (revisions) or a duration with a unit: `30s`, `15m`, `12h`, `7d`."""
    text = text.strip()
    unit = _DURATION_UNITS.get(text[-1:].lower())
    number = text[:-1] if unit else text
    if not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a number of revisions (100000) nor a duration (30s, 15m, 12h, 7d)"
        )
    if unit:
        return KeepPolicy(seconds=float(int(number) * unit))
    return KeepPolicy(revisions=int(number))


def _keep(text: str) -> str:
    keep_policy(text)
    return text.strip()


def _keep_or_all(text: str) -> str:
    return _keep(text) if text.strip() else ""


def _log_format(text: str) -> str:
    if text not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a log format: text or json")
    return text


# flag, Settings field, type, help. Each flag's default is its MODELCONFIG_* variable (as text,
# so argparse checks it with the flag's type) or else the Settings default.
_OPTIONS: tuple[tuple[str, str, Callable[[str], object], str], ...] = (
    ("--listen", "listen", _address, "host:port to listen on ([::1]:port for IPv6)"),
    ("--database-url", "database_url", str, "sqlite:///path or postgresql://..."),
    ("--workers", "workers", _at_least_one, "processes serving the port, each with its snapshot"),
    ("--threads", "threads", _at_least_one, "RPC threads per process"),
    (
        "--poll-interval",
        "poll_interval",
        _poll_interval,
        "seconds between checks for other daemons' writes (auto: 0.05 SQLite, 0.5 PostgreSQL)",
    ),
    (
        "--drain-seconds",
        "drain_seconds",
        _not_negative,
        "seconds NOT_SERVING before the port closes on SIGTERM",
    ),
    (
        "--grace-seconds",
        "grace_seconds",
        _not_negative,
        "seconds in-flight calls may take after that",
    ),
    ("--log-level", "log_level", _log_level, "DEBUG, INFO, WARNING or ERROR"),
    ("--log-format", "log_format", _log_format, "text or json (one object per line)"),
    ("--tokens-file", "tokens_file", str, "TOML file of callers and roles (SIGHUP reloads it)"),
    ("--tls-cert", "tls_cert", str, "PEM certificate (chain) to serve TLS with"),
    ("--tls-key", "tls_key", str, "PEM private key of --tls-cert"),
    ("--tls-client-ca", "tls_client_ca", str, "PEM CA that client certificates must chain to"),
    ("--metrics-listen", "metrics_listen", _optional_address, "host:port for /metrics"),
    (
        "--http-listen",
        "http_listen",
        _optional_address,
        "host:port for the JSON API over HTTP and the console",
    ),
    (
        "--changes-keep",
        "changes_keep",
        _keep,
        "changes WatchChanges can replay: revisions (100000) or a duration (7d)",
    ),
    (
        "--audit-keep",
        "audit_keep",
        _keep_or_all,
        "changes the audit trail keeps: revisions or a duration (90d); empty: all",
    ),
    (
        "--insecure",
        "insecure",
        _boolean,
        "serve a non-loopback address without TLS and authentication",
    ),
)
_FLAGS = frozenset({"insecure"})  # given alone, they mean yes


def _text(default: object) -> str:
    """A default as the text its flag's type reads (None: `auto`)."""
    return "auto" if default is None else str(default)


class _Parser(argparse.ArgumentParser):
    """Says what is wrong in one line (the usage is long), naming the variable it came from."""

    def __init__(self, argv: list[str], environ: Mapping[str, str]) -> None:
        super().__init__(prog="modelconfigd", description="Serve the modelconfig gRPC API.")
        self._argv, self._environ = argv, environ

    def error(self, message: str) -> NoReturn:
        flag = message.removeprefix("argument ").partition(":")[0]
        given = any(arg == flag or arg.startswith(flag + "=") for arg in self._argv)
        variable = "MODELCONFIG_" + flag.removeprefix("--").replace("-", "_").upper()
        if flag.startswith("--") and not given and variable in self._environ:
            message = f"{variable} (the default of {flag}): {message.partition(': ')[2]}"
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parse(argv: list[str] | None = None) -> Settings:
    defaults = Settings()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _Parser(argv, os.environ)
    for flag, field, kind, help_text in _OPTIONS:
        variable = "MODELCONFIG_" + field.upper()
        extra = {"nargs": "?", "const": "1"} if field in _FLAGS else {}
        parser.add_argument(
            flag,
            dest=field,
            type=kind,
            default=os.environ.get(variable, _text(getattr(defaults, field))),
            help=f"{help_text} ({variable}; default %(default)s)",
            **extra,
        )
    settings = Settings(**vars(parser.parse_args(argv)))
    problem = _tls_problem(settings)
    if problem:
        parser.error(problem)
    return settings


def _tls_problem(settings: Settings) -> str | None:
    if bool(settings.tls_cert) != bool(settings.tls_key):
        return "--tls-cert and --tls-key (MODELCONFIG_TLS_CERT, MODELCONFIG_TLS_KEY) go together"
    if settings.tls_client_ca and not settings.tls_cert:
        return "--tls-client-ca needs --tls-cert and --tls-key: client certificates need TLS"
    return None
