"""modelconfigctl: inspect and change a running modelconfigd's catalog and settings over gRPC."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import Message

from modelconfig import ModelConfigClient, ModelConfigError, Unavailable
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

from . import override_files

DEFAULT_TARGET = "127.0.0.1:50051"
TYPES = {"text": pb.MODEL_TYPE_TEXT, "image": pb.MODEL_TYPE_IMAGE}

# -- formatting --------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, headers first."""
    lines = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _fields(pairs: Sequence[tuple[str, object]]) -> str:
    """`key: value` lines with the values aligned."""
    width = max(len(key) for key, _ in pairs) + 1
    return "\n".join(f"{key + ':':<{width}} {value}" for key, value in pairs)


def _footer(**values: object) -> str:
    return "  ".join(f"{key}: {value}" for key, value in values.items())


def _type(model_type: int) -> str:
    return pb.ModelType.Name(model_type).removeprefix("MODEL_TYPE_").lower()


def _source(source: int) -> str:
    return pb.Source.Name(source).removeprefix("SOURCE_").lower()


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _name(model: pb.Model) -> str:
    return model.model_name or "-"


def _scope(account_id: str) -> str:
    return f"account {account_id}" if account_id else "global"


def _ref(text: str) -> int | str:
    """A model id if the text is all digits, else a name or alias."""
    return int(text) if text.isascii() and text.isdigit() else text


def _json(message: Message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


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
    return _table(
        ("ID", "NAME", "PROVIDER", "TYPE", "ACTIVE", "LABEL"),
        (
            (m.id, m.model_name, m.provider, _type(m.model_type), _yes_no(m.is_active), m.label)
            for m in response.models
        ),
    )


def _get_model(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.get_model(_ref(args.ref))


def _show_model(model: pb.Model, args: argparse.Namespace) -> str:
    pairs = [
        ("id", model.id),
        ("name", model.model_name),
        ("display name", model.display_name),
        ("provider", model.provider),
        ("type", _type(model.model_type)),
        ("active", _yes_no(model.is_active)),
        ("input per 1M tokens", model.input_price_per_1m_tokens),
        ("output per 1M tokens", model.output_price_per_1m_tokens),
        ("price per image", model.price_per_image),
        ("context window", model.context_window or ""),
        ("max output tokens", model.max_output_tokens or ""),
        ("aliases", ", ".join(model.aliases)),
        ("label", model.label),
    ]
    return _fields([(key, value) for key, value in pairs if value != ""])


def _model_usage(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.get_model_usage(args.model_id)


def _show_usage(usage: api.GetModelUsageResponse, args: argparse.Namespace) -> str:
    return _fields(
        [
            ("model", args.model_id),
            ("global slots", ", ".join(usage.global_slots) or "-"),
            ("default slots", ", ".join(usage.default_slots) or "-"),
            ("account overrides", usage.account_override_count),
            ("accounts", ", ".join(usage.account_ids) or "-"),
            ("revision", usage.revision),
        ]
    )


def _delete_model(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return api.DeleteModelResponse(revision=client.delete_model(args.model_id))


def _show_deleted(response: api.DeleteModelResponse, args: argparse.Namespace) -> str:
    return f"deleted model {args.model_id}\n{_footer(revision=response.revision)}"


def _set_active(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.update_model(pb.Model(id=args.model_id, is_active=args.active), ["is_active"])


def _show_activity(model: pb.Model, args: argparse.Namespace) -> str:
    return f"model {model.id} {model.model_name} is {'active' if model.is_active else 'inactive'}"


# -- settings ----------------------------------------------------------------------------------


def _settings(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.get_global_settings()


def _show_settings(response: api.GetGlobalSettingsResponse, args: argparse.Namespace) -> str:
    table = _table(
        ("SLOT", "MODEL", "PROVIDER", "TYPE", "DEFAULT"),
        (
            (
                s.slot,
                _name(s.model),
                s.required_provider,
                _type(s.required_model_type),
                _name(s.default_model),
            )
            for s in response.slots
        ),
    )
    return f"{table}\n\n{_footer(etag=response.etag, revision=response.revision)}"


def _set(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.set_model(
        args.slot,
        _ref(args.model),
        account_id=args.account,
        etag=args.etag,
        validate_only=args.validate_only,
    )


def _show_set(response: api.SetModelResponse, args: argparse.Namespace) -> str:
    verb = "valid, nothing changed:" if args.validate_only else "set"
    setting = response.setting
    return (
        f"{verb} {setting.slot} = {_name(setting.model)} ({_scope(args.account)})\n"
        f"{_footer(etag=response.etag, revision=response.revision)}"
    )


def _clear(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.clear_account_model(args.account, args.slot, etag=args.etag)


def _show_cleared(response: api.ClearAccountModelResponse, args: argparse.Namespace) -> str:
    return (
        f"cleared {args.slot} ({_scope(args.account)})\n"
        f"{_footer(etag=response.etag, revision=response.revision)}"
    )


def _resolve(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    return client.resolve_for_account(args.account, args.slots)


def _show_resolved(response: api.ResolveForAccountResponse, args: argparse.Namespace) -> str:
    table = _table(
        ("SLOT", "MODEL", "SOURCE"),
        ((s.slot, _name(s.model), _source(s.source)) for s in response.slots),
    )
    footer = _footer(account=response.account_id, etag=response.etag, revision=response.revision)
    return f"{table}\n\n{footer}"


# -- command line ------------------------------------------------------------------------------


def _command(subparsers, name: str, run, show, help: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help, description=help)
    parser.set_defaults(run=run, show=show)
    return parser


def _add_model_commands(subparsers) -> None:
    models = subparsers.add_parser("models", help="the model catalog").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = _command(models, "list", _list_models, _show_models, "list catalog models")
    listing.add_argument("--provider", default="", help="only this provider, e.g. openai")
    listing.add_argument("--type", choices=sorted(TYPES), help="only this model type")
    listing.add_argument("--active-only", action="store_true", help="only active models")
    listing.add_argument(
        "--page-size", type=int, default=0, help="models per request (default: the daemon's)"
    )
    _command(models, "get", _get_model, _show_model, "show one model").add_argument(
        "ref", metavar="REF", help="the model's id, name or alias"
    )
    for name, run, show, help in (
        ("usage", _model_usage, _show_usage, "show which settings use a model"),
        ("delete", _delete_model, _show_deleted, "delete a model nothing uses"),
        ("activate", _set_active, _show_activity, "let slots select a model"),
        ("deactivate", _set_active, _show_activity, "stop slots from selecting a model"),
    ):
        command = _command(models, name, run, show, help)
        command.add_argument("model_id", metavar="ID", type=int, help="the model's id")
        command.set_defaults(active=name == "activate")


def _add_setting_commands(subparsers) -> None:
    _command(
        subparsers,
        "settings",
        _settings,
        _show_settings,
        "show every slot's global model, requirements and default",
    )
    setting = _command(
        subparsers, "set", _set, _show_set, "select a model for a slot, globally or for one account"
    )
    setting.add_argument("slot", metavar="SLOT", help="the slot, e.g. openai_model")
    setting.add_argument("model", metavar="MODEL", help="the model's id, name or alias")
    setting.add_argument("--account", default="", help="set this account's override")
    setting.add_argument(
        "--validate-only", action="store_true", help="run every check and change nothing"
    )
    clearing = _command(
        subparsers, "clear", _clear, _show_cleared, "remove an account's override of a slot"
    )
    clearing.add_argument("slot", metavar="SLOT", help="the slot, e.g. openai_model")
    clearing.add_argument("--account", required=True, help="the account")
    for command in (setting, clearing):
        command.add_argument(
            "--etag", default="", help="write only if the scope's etag is still this one"
        )
    resolving = _command(
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
    return client.import_overrides(records, validate_only=args.validate_only)


def _show_imported(response: api.ImportOverridesResponse, args: argparse.Namespace) -> str:
    verb = "would import" if args.validate_only else "imported"
    return f"{verb} {response.rows:,} overrides for {response.accounts:,} accounts\n" + _footer(
        revision=response.revision
    )


def _add_import_command(subparsers) -> None:
    importing = _command(
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelconfigctl", description=__doc__)
    parser.add_argument(
        "--target",
        default=os.environ.get("MODELCONFIG_TARGET", DEFAULT_TARGET),
        help="the daemon's host:port (MODELCONFIG_TARGET; default %(default)s)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the response as JSON instead of a table"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_model_commands(subparsers)
    _add_setting_commands(subparsers)
    _add_import_command(subparsers)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with ModelConfigClient(args.target) as client:
            response = args.run(client, args)
    except ModelConfigError as error:
        _report(error, args.target)
        return 1
    except (override_files.FileFormatError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(_json(response) if args.json else args.show(response, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
