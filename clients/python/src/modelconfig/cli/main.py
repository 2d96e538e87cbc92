"""modelconfigctl: inspect and change a running modelconfigd's catalog and settings over gRPC."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import grpc
from google.protobuf.message import Message

from modelconfig import ModelConfigClient, ModelConfigError, Unavailable
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

from . import changes, estimate, override_files, slots, tokens
from . import output as fmt
from .output import TYPES

DEFAULT_TARGET = "127.0.0.1:50051"

# -- models ------------------------------------------------------------------------------------


def _list_models(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    """Every page, as one response carrying the revision of the last page."""
    models: list[pb.Model] = []
    token = ""
    while True:
        page = client.list_models(
            provider=args.provider,
            model_type=TYPES.get(args.type, pb.MODEL_TYPE_UNSPECIFIED),
            active_only=args.active_only,
            page_size=args.page_size,
            page_token=token,
        )
        models.extend(page.models)
        token = page.next_page_token
        if not token:
            return api.ListModelsResponse(models=models, revision=page.revision)


def _show_models(response: api.ListModelsResponse, args: argparse.Namespace) -> str:
    return fmt.table(
        ("ID", "NAME", "PROVIDER", "TYPE", "ACTIVE", "LABEL"),
        (
            (
                m.id,
                m.model_name,
                m.provider,
                fmt.model_type(m.model_type),
                fmt.yes_no(m.is_active),
                m.label,
            )
            for m in response.models
        ),
    )


def _get_model(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.get_model(fmt.model_ref(args.ref))


def _show_model(model: pb.Model, args: argparse.Namespace) -> str:
    pairs = [
        ("id", model.id),
        ("name", model.model_name),
        ("display name", model.display_name),
        ("provider", model.provider),
        ("type", fmt.model_type(model.model_type)),
        ("active", fmt.yes_no(model.is_active)),
        ("input per 1M tokens", model.input_price_per_1m_tokens),
        ("cached input per 1M tokens", model.cached_input_price_per_1m_tokens),
        ("output per 1M tokens", model.output_price_per_1m_tokens),
        ("price per image", model.price_per_image),
        ("context window", model.context_window or ""),
        ("max output tokens", model.max_output_tokens or ""),
        ("aliases", ", ".join(model.aliases)),
        ("label", model.label),
    ]
    return fmt.fields([(key, value) for key, value in pairs if value != ""])


def _model_usage(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    """The first page of accounts, or with --all every page, as one response."""
    usage = client.get_model_usage(args.model_id)
    if args.all and usage.next_page_token:
        accounts = list(client.iter_model_accounts(args.model_id, page_size=1000))
        del usage.account_ids[:]
        usage.account_ids.extend(accounts)
        usage.next_page_token = ""
    return usage


def _show_usage(usage: api.GetModelUsageResponse, args: argparse.Namespace) -> str:
    return fmt.fields(
        [
            ("model", args.model_id),
            ("global slots", ", ".join(usage.global_slots) or "-"),
            ("default slots", ", ".join(usage.default_slots) or "-"),
            ("account overrides", usage.account_override_count),
            ("accounts", ", ".join(usage.account_ids) or "-")
            if not usage.next_page_token
            else ("accounts", f"{', '.join(usage.account_ids)}, ... (--all lists every one)"),
            ("revision", usage.revision),
        ]
    )


def _delete_model(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return api.DeleteModelResponse(
        revision=client.delete_model(args.model_id, reason=args.reason)
    )


def _show_deleted(response: api.DeleteModelResponse, args: argparse.Namespace) -> str:
    return f"deleted model {args.model_id}\n{fmt.footer(revision=response.revision)}"


def _set_active(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.update_model(
        pb.Model(id=args.model_id, is_active=args.active), ["is_active"], reason=args.reason
    )


def _show_activity(model: pb.Model, args: argparse.Namespace) -> str:
    return f"model {model.id} {model.model_name} is {'active' if model.is_active else 'inactive'}"


# -- settings ----------------------------------------------------------------------------------


def _settings(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.get_global_settings()


def _show_settings(response: api.GetGlobalSettingsResponse, args: argparse.Namespace) -> str:
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


def _set(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.set_model(
        args.slot,
        fmt.model_ref(args.model),
        account_id=args.account or "",
        scope=pb.SCOPE_GLOBAL if args.global_scope else pb.SCOPE_ACCOUNT,
        etag=args.etag,
        validate_only=args.validate_only,
        reason=args.reason,
    )


def _show_set(response: api.SetModelResponse, args: argparse.Namespace) -> str:
    verb = "valid, nothing changed:" if args.validate_only else "set"
    setting = response.setting
    return (
        f"{verb} {setting.slot} = {fmt.name(setting.model)} ({fmt.scope(args.account)})\n"
        f"{fmt.footer(etag=response.etag, revision=response.revision)}"
    )


def _clear(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    if args.global_scope:
        return client.clear_global_model(args.slot, etag=args.etag, reason=args.reason)
    return client.clear_account_model(args.account, args.slot, etag=args.etag, reason=args.reason)


def _show_cleared(response: api.ClearAccountModelResponse, args: argparse.Namespace) -> str:
    return (
        f"cleared {args.slot} ({fmt.scope(args.account)})\n"
        f"{fmt.footer(etag=response.etag, revision=response.revision)}"
    )


def _resolve(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.resolve_for_account(args.account, args.slots)


def _skipped(resolved: pb.ResolvedSlot) -> str:
    if not resolved.HasField("skipped_override"):
        return ""
    return f"override {resolved.skipped_override.model_name} skipped: inactive"


def _show_resolved(response: api.ResolveForAccountResponse, args: argparse.Namespace) -> str:
    table = fmt.table(
        ("SLOT", "MODEL", "SOURCE", "NOTE"),
        (
            (s.slot, fmt.name(s.model), fmt.source(s.source), _skipped(s))
            for s in response.slots
        ),
    )
    footer = fmt.footer(account=response.account_id, etag=response.etag, revision=response.revision)
    return f"{table}\n\n{footer}"


# -- command line ------------------------------------------------------------------------------


def _account(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "is empty; to write the global setting, say --global instead"
        )
    return text


def _add_model_commands(subparsers) -> None:
    models = subparsers.add_parser("models", help="the model catalog").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = fmt.command(models, "list", _list_models, _show_models, "list catalog models")
    listing.add_argument("--provider", default="", help="only this provider, e.g. openai")
    listing.add_argument("--type", choices=sorted(TYPES), help="only this model type")
    listing.add_argument("--active-only", action="store_true", help="only active models")
    listing.add_argument(
        "--page-size", type=int, default=0, help="models per request (default: the daemon's)"
    )
    fmt.command(models, "get", _get_model, _show_model, "show one model").add_argument(
        "ref", metavar="REF", help="the model's id, name or alias"
    )
    usage = fmt.command(
        models, "usage", _model_usage, _show_usage, "show which settings use a model"
    )
    usage.add_argument("model_id", metavar="ID", type=int, help="the model's id")
    usage.add_argument(
        "--all", action="store_true", help="list every account, not only the first 100"
    )
    for name, run, show, help in (
        ("delete", _delete_model, _show_deleted, "delete a model nothing uses"),
        ("activate", _set_active, _show_activity, "let slots select a model"),
        ("deactivate", _set_active, _show_activity, "stop slots from selecting a model"),
    ):
        command = fmt.command(models, name, run, show, help)
        command.add_argument("model_id", metavar="ID", type=int, help="the model's id")
        command.set_defaults(active=name == "activate")


def _add_setting_commands(subparsers) -> None:
    fmt.command(
        subparsers,
        "settings",
        _settings,
        _show_settings,
        "show every slot's global model, requirements and default",
    )
    setting = fmt.command(
        subparsers, "set", _set, _show_set, "select a model for a slot, globally or for one account"
    )
    setting.add_argument("slot", metavar="SLOT", help="the slot, e.g. openai_model")
    setting.add_argument("model", metavar="MODEL", help="the model's id, name or alias")
    setting.add_argument(
        "--validate-only", action="store_true", help="run every check and change nothing"
    )
    clearing = fmt.command(
        subparsers,
        "clear",
        _clear,
        _show_cleared,
        "remove an account's override of a slot, or a slot's global setting",
    )
    clearing.add_argument("slot", metavar="SLOT", help="the slot, e.g. openai_model")
    for command, verb in ((setting, "set"), (clearing, "remove")):
        # No default scope: an empty or forgotten account must never mean "every tenant".
        scope = command.add_mutually_exclusive_group(required=True)
        scope.add_argument(
            "--global", dest="global_scope", action="store_true", help=f"{verb} the global setting"
        )
        scope.add_argument(
            "--account", type=_account, help=f"{verb} this account's override (not empty)"
        )
        command.add_argument(
            "--etag", default="", help="write only if the scope's etag is still this one"
        )
    resolving = fmt.command(
        subparsers,
        "resolve",
        _resolve,
        _show_resolved,
        "show the model an account uses for each slot, and why",
    )
    resolving.add_argument("account", metavar="ACCOUNT", help="the account")
    resolving.add_argument("slots", metavar="SLOT", nargs="*", help="only these slots")


class _Progress:
    """A one-line progress bar on stderr, redrawn at most every 0.2 s; silent unless a terminal."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._total, self._enabled = max(total, 1), enabled
        self._started = self._drawn = time.monotonic()

    def wrap(self, records: Iterable[api.OverrideRecord]) -> Iterator[api.OverrideRecord]:
        done = 0
        for done, record in enumerate(records, start=1):
            if self._enabled and time.monotonic() - self._drawn > 0.2:
                self._draw(done)
            yield record
        if self._enabled:
            self._draw(done)
            print("\napplying (one transaction)...", file=sys.stderr, flush=True)

    def _draw(self, done: int) -> None:
        self._drawn = time.monotonic()
        filled = int(30 * done / self._total)
        print(
            f"\rsending [{'#' * filled}{' ' * (30 - filled)}] {done:,}/{self._total:,} rows "
            f"{self._drawn - self._started:.1f}s",
            end="",
            file=sys.stderr,
            flush=True,
        )


def _import(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    path = Path(args.file)
    fmt = override_files.file_format(path, args.format)
    # A first pass finds malformed lines before anything is sent, and counts for the bar.
    total = sum(1 for _ in override_files.read_records(path, fmt))
    progress = _Progress(total, enabled=args.progress or sys.stderr.isatty())
    records = progress.wrap(override_files.read_records(path, fmt))
    return client.import_overrides(records, validate_only=args.validate_only, reason=args.reason)


def _show_imported(response: api.ImportOverridesResponse, args: argparse.Namespace) -> str:
    if args.validate_only:
        head = f"would import {response.rows:,} overrides for {response.accounts:,} accounts"
    else:
        head = (
            f"imported {response.rows:,} overrides for {response.accounts:,} accounts: "
            f"{response.changed_rows:,} changed"
        )
    return f"{head}\n{fmt.footer(revision=response.revision)}"


def _add_import_command(subparsers) -> None:
    importing = fmt.command(
        subparsers,
        "import",
        _import,
        _show_imported,
        "set account overrides from a CSV (account_id,slot,model) or JSON Lines file, "
        "all or nothing",
    )
    importing.add_argument("file", metavar="FILE", help="a .csv or .jsonl file")
    importing.add_argument("--format", choices=("csv", "jsonl"), help="override the file's suffix")
    importing.add_argument(
        "--validate-only", action="store_true", help="check every row and change nothing"
    )
    importing.add_argument(
        "--progress", action="store_true", help="draw the progress bar even when not a terminal"
    )


_DIST = "modelconfig-client"  # the distribution that installs modelconfigctl


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelconfigctl",
        description=__doc__,
        epilog="exit codes: 0 done, 1 failed otherwise (e.g. a file), 2 usage or a malformed "
        "request, 3 not found, 4 refused by a rule, 5 conflict (a stale etag, an import "
        "running), 6 no daemon answered in time, 7 not allowed (token, role)",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {importlib.metadata.version(_DIST)}"
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("MODELCONFIG_TARGET", DEFAULT_TARGET),
        help="the daemon's host:port (MODELCONFIG_TARGET; default %(default)s)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the response as JSON instead of a table"
    )
    parser.add_argument(
        "--reason", default="", help="why: kept with every change a write makes (audit trail)"
    )
    for flag, variable, help_text in (
        ("--token", "MODELCONFIG_TOKEN", "bearer token to authenticate with"),
        ("--cacert", "MODELCONFIG_CACERT", "PEM CA of the daemon's certificate: connect with TLS"),
        ("--cert", "MODELCONFIG_CERT", "PEM client certificate, for mutual TLS"),
        ("--key", "MODELCONFIG_KEY", "PEM key of --cert"),
    ):
        parser.add_argument(
            flag, default=os.environ.get(variable, ""), help=f"{help_text} ({variable})"
        )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_model_commands(subparsers)
    _add_setting_commands(subparsers)
    _add_import_command(subparsers)
    slots.add_commands(subparsers)
    changes.add_commands(subparsers)
    estimate.add_commands(subparsers)
    tokens.add_commands(subparsers)
    return parser


def _report(error: ModelConfigError, target: str) -> None:
    """The error, its field and precondition violations, and a hint when nothing answered."""
    head = " ".join(part for part in (error.code.name, error.reason) if part)
    lines = [f"error: {head}: {error.message}"]
    lines += [f"  {v.field}: {v.description}" for v in error.field_violations]
    lines += [f"  {v.type} {v.subject}: {v.description}" for v in error.violations]
    if isinstance(error, Unavailable) and not error.reason:
        lines.append(
            f"hint: no modelconfigd is reachable at {target}; start one or pass "
            "--target (or set MODELCONFIG_TARGET)"
        )
    print("\n".join(lines), file=sys.stderr)


def _client(args: argparse.Namespace) -> ModelConfigClient:
    def read(path: str) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return ModelConfigClient(
        args.target,
        token=args.token or None,
        root_certificates=read(args.cacert),
        certificate_chain=read(args.cert),
        private_key=read(args.key),
    )


# Exit codes, one per kind of outcome a script may want to tell apart (documented in the README
# and in --help). Usage errors exit 2, as argparse does.
EXIT_FAILED = 1  # anything else: a file that cannot be read, an unexpected status
EXIT_USAGE = 2  # the command line, or the request it makes, is malformed (INVALID_ARGUMENT)
EXIT_NOT_FOUND = 3  # NOT_FOUND
EXIT_REFUSED = 4  # a rule refuses it: FAILED_PRECONDITION, ALREADY_EXISTS
EXIT_CONFLICT = 5  # someone else got there first: ABORTED (a stale etag, an import running)
EXIT_UNAVAILABLE = 6  # no daemon answered, or not in time: UNAVAILABLE, DEADLINE_EXCEEDED
EXIT_DENIED = 7  # UNAUTHENTICATED, PERMISSION_DENIED
_EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_USAGE,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_REFUSED,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_REFUSED,
    grpc.StatusCode.ABORTED: EXIT_CONFLICT,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_DENIED,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_DENIED,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "offline", None) is not None:
        print(args.offline(args))
        return 0
    if bool(args.cert) != bool(args.key) or (args.cert and not args.cacert):
        parser.error("--cert and --key go together, and with --cacert")
    try:
        with _client(args) as client:
            response = args.run(client, args)
    except ModelConfigError as error:
        _report(error, args.target)
        return _EXIT_CODES.get(error.code, EXIT_FAILED)
    except (override_files.FileFormatError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        print(fmt.as_json(response) if args.json else args.show(response, args), flush=True)
    except BrokenPipeError:  # `modelconfigctl ... | head`: the reader left, and that is fine
        sys.stdout = None  # nothing more to flush at exit (it would fail again, loudly)
    return 0


if __name__ == "__main__":
    sys.exit(main())
