"""modelconfigctl tokens: make a token for the daemon's tokens file (no daemon needed)."""

from __future__ import annotations

import argparse

from ..tokens import ROLE_NAMES, new_token


def _new(args: argparse.Namespace) -> str:
    token, digest = new_token()
    return (
        f"token (shown once; give it to {args.name}, it is not kept anywhere):\n{token}\n\n"
        "entry for the tokens file (MODELCONFIG_TOKENS_FILE; SIGHUP the daemon to load it):\n"
        f"[[tokens]]\nname = {_toml_string(args.name)}\nrole = \"{args.role}\"\n"
        f"sha256 = \"{digest}\""
    )


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def add_commands(subparsers) -> None:
    tokens = subparsers.add_parser(
        "tokens", help="make tokens for the daemon's tokens file"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    making = tokens.add_parser(
        "new",
        help="print a new random token and its tokens-file entry",
        description="Print a new random token and the entry (its SHA-256, never the token) to "
        "paste into the daemon's tokens file. Nothing is sent to a daemon.",
    )
    making.add_argument("--name", required=True, help="the caller: the actor of its changes")
    making.add_argument("--role", required=True, choices=ROLE_NAMES, help="what it may do")
    making.set_defaults(offline=_new)
