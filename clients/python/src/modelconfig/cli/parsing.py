"""The command line's shape: the global options every command takes, and declaring a command."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import NoReturn

from . import errors

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0  # seconds per call; imports and reverts wait unless --timeout is given
_MAX_TIMEOUT = 86400.0  # grpc turns a deadline too far away into one already passed
OUTPUTS = ("table", "json", "yaml")


class Parser(argparse.ArgumentParser):
    """argparse, telling a usage error as JSON too when the command line asked for JSON."""

    json_errors = False  # set by main before parsing; subcommand parsers are of this class too

    def error(self, message: str) -> NoReturn:
        errors.usage_error(self.prog, self.format_usage(), message, as_json=Parser.json_errors)
        sys.exit(errors.EXIT_USAGE)


def wants_json(argv: list[str]) -> bool:
    """Whether the command line asks for JSON, read before argparse can refuse it."""
    for i, arg in enumerate(argv):
        if arg == "--json" or arg == "--output=json":
            return True
        if arg == "--output" and argv[i + 1 : i + 2] == ["json"]:
            return True
    return False


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= _MAX_TIMEOUT:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds from 0 to {_MAX_TIMEOUT:g}, e.g. 2.5"
        )
    return value


def add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, before or after its name.

    The top-level parser holds the defaults; each command's parser says SUPPRESS, so that an
    option not repeated after the command leaves the one given before it (or the default) alone.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    def helped(text: str) -> str:
        return text if top else argparse.SUPPRESS  # listed once, in modelconfigctl --help

    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--target",
        default=default(os.environ.get("MODELCONFIG_TARGET", DEFAULT_TARGET)),
        help=helped(f"the daemon's host:port (MODELCONFIG_TARGET; default {DEFAULT_TARGET})"),
    )
    group.add_argument(
        "--output",
        "-o",
        choices=OUTPUTS,
        default=default("table"),
        help=helped("print a table (default), or the response as JSON or YAML"),
    )
    group.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default=argparse.SUPPRESS,
        help=helped("the same as --output json"),
    )
    group.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        default=default(None),
        help=helped(
            f"deadline of each call (default {DEFAULT_TIMEOUT:g}; imports and reverts: none)"
        ),
    )
    group.add_argument(
        "--reason",
        default=default(""),
        help=helped("why: kept with every change a write makes (audit trail)"),
    )
    for flag, variable, help_text in (
        ("--token", "MODELCONFIG_TOKEN", "bearer token to authenticate with"),
        ("--cacert", "MODELCONFIG_CACERT", "PEM CA of the daemon's certificate: connect with TLS"),
        ("--cert", "MODELCONFIG_CERT", "PEM client certificate, for mutual TLS"),
        ("--key", "MODELCONFIG_KEY", "PEM key of --cert"),
    ):
        group.add_argument(
            flag,
            default=default(os.environ.get(variable, "")),
            help=helped(f"{help_text} ({variable})"),
        )


_GLOBALS_EPILOG = (
    "Global options (--target, --output, --json, --timeout, --reason, --token, --cacert, "
    "--cert, --key) go before or after the command: see modelconfigctl --help."
)


def group(subparsers, name: str, help: str):
    """A command made of actions (`models list`, `models show`): returns their subparsers."""
    parser = subparsers.add_parser(name, help=help, description=help, epilog=_GLOBALS_EPILOG)
    add_globals(parser, top=False)
    return parser.add_subparsers(dest="action", required=True, metavar="ACTION")


def command(subparsers, name: str, run, show, help: str, **kwargs):
    """A command that calls `run(client, args)` and prints `show(response, args)`."""
    parser = subparsers.add_parser(
        name, help=help, description=help, epilog=_GLOBALS_EPILOG, **kwargs
    )
    add_globals(parser, top=False)
    parser.set_defaults(run=run, show=show, offline=False)
    return parser


def offline(subparsers, name: str, run, show, help: str, **kwargs):
    """A command that needs no daemon: prints `show(run(args), args)`."""
    parser = command(subparsers, name, run, show, help, **kwargs)
    parser.set_defaults(offline=True)
    return parser
