"""modelconfigctl settings, set and clear: select a slot's model globally or for one account."""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from .._client import ModelConfigClient
from ..v1 import model_config_service_pb2 as api
from ..v1 import resources_pb2 as pb
from . import output as fmt
from .parsing import command
from .refs import model_ref


def _get(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.get_global_settings()


def _show(response: api.GetGlobalSettingsResponse, args: argparse.Namespace) -> str:
    table = fmt.table(
        ("SLOT", "MODEL", "PROVIDER", "TYPE", "DEFAULT"),
        (
            (
                s.slot,
                fmt.name(s.model),
                s.required_provider,
                fmt.model_type(s.required_model_type),
                fmt.name(s.default_model),
            )
            for s in response.slots
        ),
    )
    return f"{table}\n\n{fmt.footer(etag=response.etag, revision=response.revision)}"


def set_model(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    """SetModel in the scope the command names: `args.global_scope` or `args.account`."""
    return client.set_model(
        args.slot,
        model_ref(args.model),
        account_id=args.account or "",
        scope=pb.SCOPE_GLOBAL if args.global_scope else pb.SCOPE_ACCOUNT,
        etag=args.etag,
        validate_only=args.validate_only,
        reason=args.reason,
    )


def show_set(response: api.SetModelResponse, args: argparse.Namespace) -> str:
    verb = "valid, nothing changed:" if args.validate_only else "set"
    setting = response.setting
    return (
        f"{verb} {setting.slot} = {fmt.name(setting.model)} ({fmt.scope(args.account)})\n"
        f"{fmt.footer(etag=response.etag, revision=response.revision)}"
    )


def clear_model(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    if args.global_scope:
        return client.clear_global_model(args.slot, etag=args.etag, reason=args.reason)
    return client.clear_account_model(args.account, args.slot, etag=args.etag, reason=args.reason)


def show_cleared(response: api.ClearAccountModelResponse, args: argparse.Namespace) -> str:
    return (
        f"cleared {args.slot} ({fmt.scope(args.account)})\n"
        f"{fmt.footer(etag=response.etag, revision=response.revision)}"
    )


def account(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "is empty; to write the global setting, say --global instead"
        )
    return text


def add_write_flags(parser: argparse.ArgumentParser, *, setting: bool) -> None:
    """--etag, and for a set --validate-only: what every form of set and clear takes."""
    parser.add_argument("--etag", default="", help="write only if the scope's etag is still this")
    if setting:
        parser.add_argument(
            "--validate-only", action="store_true", help="run every check and change nothing"
        )


def add_commands(subparsers) -> None:
    about = "show every slot's global model, requirements and default"
    settings = command(subparsers, "settings", _get, _show, about)
    actions = settings.add_subparsers(dest="action", metavar="ACTION")  # none: `get`
    command(actions, "get", _get, _show, about)
    for name, run, show, help in (
        ("set", set_model, show_set, "select a slot's global model"),
        ("clear", clear_model, show_cleared, "remove a slot's global model: its default applies"),
    ):
        writing = command(actions, name, run, show, help)
        writing.add_argument("slot", metavar="SLOT", help="the slot, e.g. openai_model")
        if name == "set":
            writing.add_argument("model", metavar="MODEL", help="the model's id, name or alias")
        # Required although implied: every tenant's model changes, so the command says so.
        writing.add_argument(
            "--global",
            dest="global_scope",
            action="store_true",
            required=True,
            help="yes, the global setting (required)",
        )
        add_write_flags(writing, setting=name == "set")
        writing.set_defaults(account=None)

    setting = command(
        subparsers,
        "set",
        set_model,
        show_set,
        "select a model for a slot, globally or for one account",
    )
    setting.add_argument("slot", metavar="SLOT", help="the slot, e.g. openai_model")
    setting.add_argument("model", metavar="MODEL", help="the model's id, name or alias")
    clearing = command(
        subparsers,
        "clear",
        clear_model,
        show_cleared,
        "remove an account's override of a slot, or a slot's global setting",
    )
    clearing.add_argument("slot", metavar="SLOT", help="the slot, e.g. openai_model")
    for writing, verb in ((setting, "set"), (clearing, "remove")):
        # No default scope: an empty or forgotten account must never mean "every tenant".
        scope = writing.add_mutually_exclusive_group(required=True)
        scope.add_argument(
            "--global", dest="global_scope", action="store_true", help=f"{verb} the global setting"
        )
        scope.add_argument(
            "--account", type=account, help=f"{verb} this account's override (not empty)"
        )
        add_write_flags(writing, setting=writing is setting)
