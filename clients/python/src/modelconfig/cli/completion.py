"""modelconfigctl completion: a shell's tab completion script, made from the parser itself."""

from __future__ import annotations

import argparse

from .errors import CommandError
from .parsing import offline

SHELLS = ("bash", "zsh")


def _script(args: argparse.Namespace) -> str:
    # shtab, not argcomplete: it writes a static script once, so a TAB press runs no Python
    # (argcomplete starts modelconfigctl, grpc and all, on every press), and it speaks zsh
    # natively rather than through bash emulation.
    try:
        import shtab  # the [cli] extra: only this command needs it
    except ImportError:
        raise CommandError(
            "completion needs shtab: pip install 'modelconfig-client[cli]'",
            reason="MISSING_EXTRA",
        ) from None
    return shtab.complete(args.parser, shell=args.shell)


def add_commands(subparsers) -> None:
    completing = offline(
        subparsers,
        "completion",
        _script,
        None,
        'print a tab completion script: eval "$(modelconfigctl completion bash)" in ~/.bashrc, '
        "or for zsh save `modelconfigctl completion zsh` as _modelconfigctl on your $fpath",
    )
    completing.add_argument("shell", choices=SHELLS, help="the shell")
