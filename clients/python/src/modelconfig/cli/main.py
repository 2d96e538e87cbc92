"""modelconfigctl: inspect and change a running modelconfigd's catalog and settings over gRPC."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

from .._client import ModelConfigClient
from .._errors import ModelConfigError
from . import (
    accounts,
    changes,
    completion,
    configuration,
    errors,
    estimate,
    imports,
    legacy,
    models,
    override_files,
    settings,
    slots,
    tokens,
)
from .errors import CommandError
from .output import render
from .parsing import DEFAULT_TIMEOUT, Parser, add_globals, wants_json

_DIST = "modelconfig-client"  # the distribution that installs modelconfigctl


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="modelconfigctl", description=__doc__, epilog=errors.EPILOG)
    top.add_argument(
        "--version", action="version", version=f"%(prog)s {importlib.metadata.version(_DIST)}"
    )
    add_globals(top, top=True)
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        models,
        settings,
        accounts,
        imports,
        configuration,
        legacy,
        slots,
        changes,
        estimate,
        tokens,
        completion,
    ):
        module.add_commands(subparsers)
    return top


def _client(args: argparse.Namespace) -> ModelConfigClient:
    def read(path: str) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return ModelConfigClient(
        args.target,
        timeout=args.timeout or DEFAULT_TIMEOUT,
        token=args.token or None,
        root_certificates=read(args.cacert),
        certificate_chain=read(args.cert),
        private_key=read(args.key),
    )


def _run(args: argparse.Namespace) -> object:
    if args.offline:
        return args.run(args)
    with _client(args) as client:
        return args.run(client, args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    Parser.json_errors = wants_json(argv)
    command_line = parser()
    args = command_line.parse_args(argv)
    args.parser, args.failure = command_line, None
    if bool(args.cert) != bool(args.key) or (args.cert and not args.cacert):
        command_line.error("--cert and --key go together, and with --cacert")
    as_json = args.output == "json"
    try:
        response = _run(args)
        text = render(response, args.output, args.show, args)
    except (ModelConfigError, CommandError) as error:
        timeout = args.timeout or DEFAULT_TIMEOUT
        errors.report(error, target=args.target, timeout=timeout, as_json=as_json)
        return errors.exit_code(error)
    except (override_files.FileFormatError, OSError) as error:
        message = str(error)
        if isinstance(error, OSError) and error.filename and error.strerror:
            message = f"cannot read {error.filename}: {error.strerror}"
        failure = CommandError(message, reason="FILE_UNUSABLE")
        errors.report(failure, target=args.target, timeout=0, as_json=as_json)
        return errors.EXIT_FAILED
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `modelconfigctl ... | head`: the reader left, and that is fine
        sys.stdout = None  # nothing more to flush at exit (it would fail again, loudly)
    if args.failure is not None:  # a partial failure: the output stands, and says which
        errors.report(args.failure, target=args.target, timeout=0, as_json=as_json)
        return errors.exit_code(args.failure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
