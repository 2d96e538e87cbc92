"""modelconfigctl tokens: make a token for the daemon's tokens file (no daemon needed)."""

from __future__ import annotations

import argparse

from ..tokens import ROLE_NAMES, new_token
from .parsing import group, offline


def _new(args: argparse.Namespace) -> dict[str, str]:
    token, digest = new_token()
    return {"name": args.name, "role": args.role, "token": token, "sha256": digest}


def _show(made: dict[str, str], args: argparse.Namespace) -> str:
    return (
        f"token (shown once; give it to {made['name']}, it is not kept anywhere):\n"
        f"{made['token']}\n\n"
        "entry for the tokens file (MODELCONFIG_TOKENS_FILE; SIGHUP the daemon to load it):\n"
        f'[[tokens]]\nname = {_toml_string(made["name"])}\nrole = "{made["role"]}"\n'
        f'sha256 = "{made["sha256"]}"'
    )


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def add_commands(subparsers) -> None:
    tokens = group(subparsers, "tokens", "make tokens for the daemon's tokens file")
    making = offline(
        tokens,
        "new",
        _new,
        _show,
        "Print a new random token and the entry (its SHA-256, never the token) to paste into "
        "the daemon's tokens file. Nothing is sent to a daemon.",
    )
    making.add_argument("--name", required=True, help="the caller: the actor of its changes")
    making.add_argument("--role", required=True, choices=ROLE_NAMES, help="what it may do")
