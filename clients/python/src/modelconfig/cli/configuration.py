"""modelconfigctl export and apply: the whole configuration as a YAML file, made true in one go.

The YAML holds the catalog, the slots and the global settings; the account overrides, which can
be a million, go to a JSON Lines or CSV file beside it (the format `modelconfigctl import`
reads), named in the YAML. Export, then apply into an empty daemon, then export again gives the
same files.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from .._client import ModelConfigClient
from ..v1 import model_config_service_pb2 as api
from ..v1 import resources_pb2 as pb
from . import output as fmt
from . import override_files
from .errors import CommandError
from .imports import Progress
from .parsing import command

HEADER = "# modelconfig configuration: apply it with `modelconfigctl apply FILE`\n"
# Output-only fields, left out of the file (the daemon derives them).
_MODEL_DERIVED = ("label",)
_SLOT_DERIVED = ("default_model",)
_IDS = ("id", "successor_id", "default_model_id")


def _yaml():
    try:
        import yaml
    except ImportError:
        raise CommandError(
            "export and apply need PyYAML: pip install 'modelconfig-client[cli]'",
            reason="MISSING_EXTRA",
        ) from None
    return yaml


def _plain(message: Message, derived: tuple[str, ...]) -> dict[str, Any]:
    """A message in the proto JSON mapping, ids as numbers, derived fields left out."""
    values = json_format.MessageToDict(message, preserving_proto_field_name=True)
    for name in derived:
        values.pop(name, None)
    for name in _IDS:
        if name in values:
            values[name] = int(values[name])
    return values


def document(configuration: api.Configuration) -> dict[str, Any]:
    """The configuration as the YAML file holds it (without the overrides)."""
    return {
        "models": [_plain(m, _MODEL_DERIVED) for m in configuration.models],
        "slots": [_plain(s, _SLOT_DERIVED) for s in configuration.slots],
        "global_settings": {g.slot: g.model_id for g in configuration.global_settings},
    }


def from_document(values: dict[str, Any], where: Path) -> api.Configuration:
    """The YAML file's configuration; CommandError naming what is wrong with its shape."""
    if not isinstance(values, dict) or not {"models", "slots"} <= values.keys():
        raise CommandError(
            f"{where}: not a configuration (no models and slots)", reason="BAD_FILE"
        )
    try:
        models = [_parse(m, _MODEL_DERIVED, pb.Model()) for m in values["models"]]
        slots = [_parse(s, _SLOT_DERIVED, pb.Slot()) for s in values["slots"]]
        settings = [
            api.GlobalSetting(slot=str(slot), model_id=int(model_id))
            for slot, model_id in (values.get("global_settings") or {}).items()
        ]
    except (json_format.ParseError, AttributeError, TypeError, ValueError) as exc:
        raise CommandError(f"{where}: {exc}", reason="BAD_FILE") from exc
    return api.Configuration(models=models, slots=slots, global_settings=settings)


def _parse(values: dict[str, Any], derived: tuple[str, ...], message: Message) -> Any:
    return json_format.ParseDict({k: v for k, v in values.items() if k not in derived}, message)


# -- export ------------------------------------------------------------------------------------


def _write_overrides(path: Path, kind: str, rows: Iterator[api.OverrideRecord]) -> int:
    """The overrides as `modelconfigctl import` reads them; how many were written."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if kind == "csv":
            writer.writerow(override_files.COLUMNS)
        for r in rows:
            count += 1
            if kind == "csv":
                writer.writerow((r.account_id, r.slot, r.model_id))
            else:
                line = {"account_id": r.account_id, "slot": r.slot, "model": r.model_id}
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return count


def _export(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    yaml = _yaml()
    path = Path(args.file)
    kind = args.overrides_format
    beside = path.with_name(f"{path.stem}.overrides.{kind}")
    responses = client.export_configuration(timeout=args.timeout)
    first = next(responses)
    values = document(first.configuration)
    values["overrides"] = {"file": beside.name, "count": first.override_count}
    progress = Progress(
        first.override_count, args.progress or sys.stderr.isatty(), doing="writing", then=""
    )
    rows = progress.wrap(r for part in responses for r in part.overrides)
    written = _write_overrides(beside, kind, rows)
    path.write_text(
        HEADER + yaml.safe_dump(values, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    args.written = (path, beside, written)
    return api.ExportConfigurationResponse(
        configuration=first.configuration,
        revision=first.revision,
        override_count=first.override_count,
    )


def _show_export(response: api.ExportConfigurationResponse, args: argparse.Namespace) -> str:
    path, beside, written = args.written
    configuration = response.configuration
    return (
        f"exported {fmt.plural(len(configuration.models), 'model')}, "
        f"{fmt.plural(len(configuration.slots), 'slot')} and "
        f"{fmt.plural(len(configuration.global_settings), 'global setting')} to {path}, "
        f"{fmt.plural(written, 'override')} to {beside}\n"
        f"{fmt.footer(revision=response.revision)}"
    )


# -- apply -------------------------------------------------------------------------------------


def _read(path: Path) -> tuple[api.Configuration, Path | None, int]:
    """The configuration, the overrides file it names (None: leave overrides alone), and how
    many overrides that file holds."""
    yaml = _yaml()
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise CommandError(f"{path}: not YAML: {exc}", reason="BAD_FILE") from exc
    configuration = from_document(values, path)
    named = values.get("overrides")
    if not named:
        return configuration, None, 0
    beside = path.parent / str(named["file"])
    kind = override_files.file_format(beside, None)
    count = sum(1 for _ in override_files.read_records(beside, kind))
    return configuration, beside, count


def _named(model: pb.Model | None, model_id: int) -> str:
    return f"{model_id} {model.model_name}" if model is not None else str(model_id)


def diff(current: api.Configuration, wanted: api.Configuration) -> list[str]:
    """What applying `wanted` over `current` changes, a line each: + new, - gone, ~ changed."""
    lines: list[str] = []
    now = {m.id: _plain(m, _MODEL_DERIVED) for m in current.models}
    then = {m.id: _plain(m, _MODEL_DERIVED) for m in wanted.models}
    names = {m.id: m for m in [*current.models, *wanted.models]}
    for model_id in sorted(now.keys() | then.keys()):
        before, after = now.get(model_id), then.get(model_id)
        if before == after:
            continue
        label = f"model {_named(names.get(model_id), model_id)}"
        if before is None:
            lines.append(f"+ {label}")
        elif after is None:
            lines.append(f"- {label}")
        else:
            lines.append(f"~ {label}: {_changes(before, after)}")
    slots_now = {s.name: _plain(s, _SLOT_DERIVED) for s in current.slots}
    for slot in wanted.slots:
        before, after = slots_now.get(slot.name), _plain(slot, _SLOT_DERIVED)
        if before is None:
            lines.append(f"+ slot {slot.name}")
        elif before != after:
            lines.append(f"~ slot {slot.name}: {_changes(before, after)}")
    globals_now = {g.slot: g.model_id for g in current.global_settings}
    globals_then = {g.slot: g.model_id for g in wanted.global_settings}
    for name in [s.name for s in wanted.slots]:
        was, will = globals_now.get(name), globals_then.get(name)
        if was != will:
            shown = [_named(names.get(m), m) if m else "none" for m in (was, will)]
            lines.append(f"~ global setting {name}: {shown[0]} -> {shown[1]}")
    return lines


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    return ", ".join(f"{k}: {_short(before.get(k))} -> {_short(after.get(k))}" for k in keys)


def _short(value: object) -> str:
    text = "none" if value in (None, "", [], {}) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _apply(client: ModelConfigClient, args: argparse.Namespace) -> Message:
    path = Path(args.file)
    wanted, beside, count = _read(path)
    read = next(client.export_configuration(timeout=args.timeout))
    args.diff = diff(read.configuration, wanted)

    def rows() -> Iterator[api.OverrideRecord] | None:
        if beside is None:
            return None
        kind = override_files.file_format(beside, None)
        progress = Progress(count, args.progress or sys.stderr.isatty(), then="")
        return progress.wrap(override_files.read_records(beside, kind))

    # Checked first, so that a refusal changes nothing and the diff is the daemon's too; then
    # applied only if nothing changed since the diff was made (else ABORTED, exit 5).
    checked = client.apply_configuration(
        wanted,
        rows(),
        validate_only=True,
        expected_revision=read.revision,
        reason=args.reason,
        timeout=args.timeout,
    )
    if args.dry_run or not _changes_anything(checked):
        return checked
    return client.apply_configuration(
        wanted, rows(), expected_revision=read.revision, reason=args.reason, timeout=args.timeout
    )


def _changes_anything(response: api.ApplyConfigurationResponse) -> bool:
    return any(
        (
            response.models_created,
            response.models_updated,
            response.models_deleted,
            response.slots_created,
            response.slots_updated,
            response.global_settings_changed,
            response.overrides_changed,
        )
    )


def _show_apply(response: api.ApplyConfigurationResponse, args: argparse.Namespace) -> str:
    lines = list(args.diff)
    if response.overrides_changed:
        lines.append(
            f"~ {fmt.plural(response.overrides_changed, 'override')} of "
            f"{fmt.plural(response.accounts_changed, 'account')}"
        )
    if not _changes_anything(response):
        return f"nothing to change: the daemon already matches {args.file}\n" + fmt.footer(
            revision=response.revision
        )
    verb = "would apply (dry run, nothing changed)" if args.dry_run else "applied in one change"
    return "\n".join([*lines, verb, fmt.footer(revision=response.revision)])


def add_commands(subparsers) -> None:
    exporting = command(
        subparsers,
        "export",
        _export,
        _show_export,
        "write the whole configuration to a YAML file, and the overrides to a file beside it",
    )
    exporting.add_argument("file", metavar="FILE", help="the YAML file to write, e.g. prod.yaml")
    exporting.add_argument(
        "--overrides-format",
        choices=("jsonl", "csv"),
        default="jsonl",
        help="the overrides file's format (default jsonl): FILE's name with .overrides.FORMAT",
    )
    applying = command(
        subparsers,
        "apply",
        _apply,
        _show_apply,
        "make the daemon match a configuration file in one change (models, slots, global "
        "settings, and the overrides when the file names them)",
    )
    applying.add_argument("file", metavar="FILE", help="a file `modelconfigctl export` wrote")
    applying.add_argument(
        "--dry-run", action="store_true", help="print what would change, and change nothing"
    )
    for parser in (exporting, applying):
        parser.add_argument(
            "--progress", action="store_true", help="draw the progress bar even when not a terminal"
        )
