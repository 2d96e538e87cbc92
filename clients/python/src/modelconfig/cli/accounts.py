"""modelconfigctl accounts and resolve: an account's overrides, and the models accounts use."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from google.protobuf.message import Message

from .._client import ModelConfigClient
from ..v1 import model_config_service_pb2 as api
from ..v1 import resources_pb2 as pb
from . import output as fmt
from .errors import EXIT_USAGE, CommandError, exit_code_of_status
from .parsing import command, group
from .refs import model_id
from .settings import account, add_write_flags, clear_model, set_model, show_cleared, show_set

BATCH = 1000  # the most accounts one ResolveForAccounts takes


def _note(resolved: pb.ResolvedSlot) -> str:
    """What an operator should know of a resolved slot: a skipped override, a deprecation."""
    notes = []
    if resolved.HasField("skipped_override"):
        notes.append(f"override {resolved.skipped_override.model_name} skipped: inactive")
    if resolved.deprecated:
        successor = resolved.model.successor_id
        notes.append(
            f"deprecated since {resolved.model.deprecation_date}"
            + (f", successor {successor}" if successor else "")
        )
    return "; ".join(notes)


def _resolve_one(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.resolve_for_account(args.account, args.slots)


def _show_one(response: api.ResolveForAccountResponse, args: argparse.Namespace) -> str:
    table = fmt.table(
        ("SLOT", "MODEL", "SOURCE", "NOTE"),
        ((s.slot, fmt.name(s.model), fmt.source(s.source), _note(s)) for s in response.slots),
    )
    footer = fmt.footer(account=response.account_id, etag=response.etag, revision=response.revision)
    return f"{table}\n\n{footer}"


def read_account_ids(path: Path) -> list[str]:
    """One account id per line; blank lines are skipped, the rest taken as written (trimmed)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text", reason="BAD_FILE") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _batches(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


def _resolve_many(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    """Every account of the file, BATCH at a time: one response, revision of the newest batch.

    Each batch is answered from one state; batches apart may see writes made in between.
    """
    ids = read_account_ids(Path(args.file))
    if not ids:
        raise CommandError(f"{args.file}: no account ids in it", reason="BAD_FILE")
    combined = api.ResolveForAccountsResponse()
    for batch in _batches(ids):
        answer = client.resolve_for_accounts(batch, args.slots)
        combined.results.extend(answer.results)
        combined.revision = max(combined.revision, answer.revision)
    failed = [result for result in combined.results if result.HasField("error")]
    if failed:
        # Printed with the others; the exit code and stderr tell a script that some failed.
        first = failed[0]
        args.failure = CommandError(
            f"{fmt.plural(len(failed), 'account')} could not be resolved, the first "
            f"({first.account_id}): {first.error.reason} {first.error.message}",
            reason=first.error.reason or "ACCOUNT_NOT_RESOLVED",
            exit_code=exit_code_of_status(first.error.code),
        )
    return combined


def _show_many(response: api.ResolveForAccountsResponse, args: argparse.Namespace) -> str:
    def rows():
        for result in response.results:
            if result.HasField("error"):
                problem = f"{result.error.reason or 'error'}: {result.error.message}"
                yield (result.account_id, "-", "-", "-", problem)
            for s in result.slots:
                yield (
                    result.account_id,
                    s.slot,
                    fmt.name(s.model),
                    fmt.source(s.source),
                    _note(s),
                )

    failed = sum(1 for result in response.results if result.HasField("error"))
    counts = fmt.plural(len(response.results), "account")
    if failed:
        counts += f", {failed:,} not resolved"
    table = fmt.table(("ACCOUNT", "SLOT", "MODEL", "SOURCE", "NOTE"), rows())
    return f"{table}\n\n{fmt.footer(accounts=counts, revision=response.revision)}"


def _resolve(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    if args.file:
        # With a file every argument is a slot: argparse took the first for the ACCOUNT.
        args.slots = [args.account, *args.slots] if args.account else args.slots
        return _resolve_many(client, args)
    if not args.account:
        raise CommandError(
            "accounts resolve: name an ACCOUNT, or --file with one account id per line",
            reason="USAGE",
            exit_code=EXIT_USAGE,
        )
    return _resolve_one(client, args)


def _show_resolved(response: Message, args: argparse.Namespace) -> str:
    if isinstance(response, api.ResolveForAccountsResponse):
        return _show_many(response, args)
    assert isinstance(response, api.ResolveForAccountResponse)
    return _show_one(response, args)


def _list(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    """One page, or with --all every page as one response."""
    model = model_id(client, args.model) if args.model else 0
    if not args.all:
        return client.list_accounts(
            slot=args.slot, model_id=model, page_size=args.page_size, page_token=args.page_token
        )
    found = list(client.iter_accounts(slot=args.slot, model_id=model, page_size=args.page_size))
    return api.ListAccountsResponse(accounts=found)


def _show_list(response: api.ListAccountsResponse, args: argparse.Namespace) -> str:
    rows = [
        (a.account_id, ", ".join(f"{o.slot}={o.model_id}" for o in a.overrides), a.etag)
        for a in response.accounts
    ]
    lines = fmt.table(("ACCOUNT", "OVERRIDES (slot=model id)", "ETAG"), rows)
    count = fmt.plural(len(rows), "account")
    if response.next_page_token:
        return f"{lines}\n\n{count} shown; next page: --page-token {response.next_page_token}"
    return f"{lines}\n\n{count}"


def add_commands(subparsers) -> None:
    accounts = group(subparsers, "accounts", "an account's overrides and resolved models")
    listing = command(
        accounts, "list", _list, _show_list, "list the accounts with overrides, in id order"
    )
    listing.add_argument("--slot", default="", help="only accounts overriding this slot")
    listing.add_argument("--model", metavar="MODEL", help="only accounts selecting this model")
    listing.add_argument("--all", action="store_true", help="every page, not only the first")
    listing.add_argument(
        "--page-size", type=int, default=0, help="accounts per page (default: the daemon's, 100)"
    )
    listing.add_argument("--page-token", default="", help="the page a previous call pointed to")
    setting = command(
        accounts, "set", set_model, show_set, "select a model for a slot of one account"
    )
    clearing = command(
        accounts,
        "clear",
        clear_model,
        show_cleared,
        "remove an account's override of a slot: the global setting applies again",
    )
    for writing in (setting, clearing):
        writing.add_argument("account", metavar="ACCOUNT", type=account, help="the account")
        writing.add_argument("slot", metavar="SLOT", help="the slot, e.g. openai_model")
        if writing is setting:
            writing.add_argument("model", metavar="MODEL", help="the model's id, name or alias")
        add_write_flags(writing, setting=writing is setting)
        writing.set_defaults(global_scope=False)
    resolving = command(
        accounts,
        "resolve",
        _resolve,
        _show_resolved,
        "show the model each slot gives an account, and why; --file for many accounts",
    )
    resolving.add_argument("account", metavar="ACCOUNT", nargs="?", help="the account")
    resolving.add_argument(
        "slots", metavar="SLOT", nargs="*", help="only these slots (with --file: no ACCOUNT)"
    )
    resolving.add_argument(
        "--file",
        metavar="FILE",
        help=f"resolve every account id of FILE (one a line), {BATCH:,} a call",
    )

    top = command(
        subparsers,
        "resolve",
        _resolve_one,
        _show_one,
        "show the model an account uses for each slot, and why",
    )
    top.add_argument("account", metavar="ACCOUNT", help="the account")
    top.add_argument("slots", metavar="SLOT", nargs="*", help="only these slots")
