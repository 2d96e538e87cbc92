"""modelconfigctl import-legacy: the old platform's model settings, mapped onto the catalog.

Every value is mapped to a catalog id before anything is written; a value that maps to nothing
stops the import (unless --skip-unmapped) with a report naming its account, key and value.
Account overrides then go in one ImportOverrides (one revision), global settings by SetModel.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from .._client import ModelConfigClient
from ..v1 import model_config_service_pb2 as api
from ..v1 import resources_pb2 as pb
from . import output as fmt
from .errors import EXIT_REFUSED, CommandError
from .imports import summary
from .legacy_files import LegacyValue, read_legacy
from .parsing import command


@dataclass(frozen=True)
class MappedValue:
    """A value of the file and what it maps to: a slot and a model, or a problem."""

    given: LegacyValue
    slot: str = ""
    model: pb.Model | None = None
    problem: str = ""

    def as_data(self) -> dict[str, object]:
        row: dict[str, object] = {
            "line": self.given.line,
            "account_id": self.given.account_id,
            "key": self.given.key,
            "value": self.given.value,
        }
        if self.problem:
            return {**row, "problem": self.problem}
        assert self.model is not None
        return {
            **row,
            "slot": self.slot,
            "model_id": self.model.id,
            "model_name": self.model.model_name,
        }


class Catalog:
    """The slots and models values are mapped onto, read once."""

    def __init__(self, slots: list[str], models: list[pb.Model]) -> None:
        self.slots = set(slots)
        self.by_id = {m.id: m for m in models}
        self.by_name = {name: m for m in models for name in (m.model_name, *m.aliases)}

    def slot(self, key: str) -> str | None:
        if key in self.slots:
            return key
        bare = key.removesuffix("_id")
        return bare if bare != key and bare in self.slots else None

    def model(self, value: object) -> tuple[pb.Model | None, str]:
        """The model a value names, or None and why not."""
        if isinstance(value, bool) or not isinstance(value, int | str):
            return None, "not a model id, name or alias"
        if isinstance(value, str):
            value = value.strip()
        if isinstance(value, int) or (value.isascii() and value.isdigit()):
            found = self.by_id.get(int(value))
            return found, "" if found else "no model has this id"
        found = self.by_name.get(value)
        return found, "" if found else "no model has this name or alias"


def map_values(values: list[LegacyValue], catalog: Catalog) -> list[MappedValue]:
    """Each value's mapping, in file order. A slot given twice in one scope (`openai_model` and
    `openai_model_id`, or two objects) maps once if both name one model, and not at all if not.
    """
    mappings = []
    for given in values:
        slot = catalog.slot(given.key)
        model, problem = catalog.model(given.value) if slot else (None, "no such slot")
        mappings.append(MappedValue(given, slot or "", model, problem))
    models: dict[tuple[str | None, str], set[int]] = {}
    for m in mappings:
        if m.model is not None:
            models.setdefault((m.given.account_id, m.slot), set()).add(m.model.id)
    kept, seen = [], set()
    for m in mappings:
        scope = (m.given.account_id, m.slot)
        if m.model is not None and len(models[scope]) > 1:
            ids = " and ".join(str(i) for i in sorted(models[scope]))
            m = MappedValue(m.given, m.slot, problem=f"{m.slot} is given models {ids}")
        elif m.model is not None and scope in seen:
            continue  # the same model again
        seen.add(scope)
        kept.append(m)
    return kept


def _scope(account_id: str | None) -> str:
    return "(global)" if account_id is None else account_id


def _report(mappings: list[MappedValue]) -> str:
    def target(m: MappedValue) -> str:
        if m.problem:
            return f"NOT MAPPED: {m.problem}"
        assert m.model is not None
        return f"{m.slot} = {m.model.id} {m.model.model_name}"

    return fmt.table(
        ("LINE", "ACCOUNT", "KEY", "VALUE", "MAPS TO"),
        (
            (m.given.line, _scope(m.given.account_id), m.given.key, m.given.value, target(m))
            for m in mappings
        ),
    )


def _apply(
    client: ModelConfigClient, mapped: list[MappedValue], args: argparse.Namespace, reason: str
) -> dict[str, object]:
    records = [
        api.OverrideRecord(
            line=m.given.line, account_id=m.given.account_id, slot=m.slot, model_id=m.model.id
        )
        for m in mapped
        if m.given.account_id is not None and m.model is not None
    ]
    settings = [(m.slot, m.model.id) for m in mapped if m.given.account_id is None and m.model]

    def write(validate_only: bool) -> dict[str, object]:
        done: dict[str, object] = {}
        if records:
            done["import"] = client.import_overrides(
                records, validate_only=validate_only, reason=reason, timeout=args.timeout
            )
        done["global_settings"] = [
            client.set_model(
                slot, model_id, scope=pb.SCOPE_GLOBAL, validate_only=validate_only, reason=reason
            )
            for slot, model_id in settings
        ]
        return done

    # Several writes are several transactions: check them all before the first one commits.
    if (1 if records else 0) + len(settings) > 1:
        write(validate_only=True)
    return write(validate_only=False)


def _import_legacy(client: ModelConfigClient, args: argparse.Namespace) -> dict[str, object]:
    path = Path(args.file)
    values = read_legacy(path)
    if not values:
        raise CommandError(f"{path}: no settings in it", reason="BAD_FILE")
    catalog = Catalog(
        [s.name for s in client.list_slots().slots], list(client.iter_models(page_size=1000))
    )
    mappings = map_values(values, catalog)
    mapped = [m for m in mappings if not m.problem]
    unmapped = [m for m in mappings if m.problem]
    result: dict[str, object] = {
        "dry_run": args.dry_run,
        "mapped": [m.as_data() for m in mapped],
        "unmapped": [m.as_data() for m in unmapped],
    }
    args.mappings = mappings
    if unmapped and not args.skip_unmapped:
        failure = CommandError(
            f"{fmt.plural(len(unmapped), 'value')} of {path} "
            f"{'maps' if len(unmapped) == 1 else 'map'} to no slot or model; nothing was "
            "applied (--skip-unmapped applies the rest)",
            reason="UNMAPPED_VALUES",
            exit_code=EXIT_REFUSED,
            report=None if args.dry_run else _report(unmapped),
            extra={"unmapped": result["unmapped"]},
        )
        if not args.dry_run:
            raise failure
        args.failure = failure  # the dry run prints its report, and fails all the same
    if args.dry_run or not mapped:
        return result
    reason = args.reason or f"modelconfigctl import-legacy {path.name}"
    return {**result, **_apply(client, mapped, args, reason)}


def _show(result: dict[str, object], args: argparse.Namespace) -> str:
    mappings: list[MappedValue] = args.mappings
    if args.dry_run:
        return f"{_report(mappings)}\n\ndry run: nothing applied"
    lines = []
    skipped = [m for m in mappings if m.problem]
    if skipped:
        lines += [_report(skipped), "", f"skipped {fmt.plural(len(skipped), 'unmapped value')}"]
    written: list[api.SetModelResponse] = result.get("global_settings", [])  # type: ignore[assignment]
    lines += [
        f"set {w.setting.slot} = {fmt.name(w.setting.model)} (global)  revision: {w.revision}"
        for w in written
    ]
    imported = result.get("import")
    if isinstance(imported, api.ImportOverridesResponse):
        lines.append(f"{summary(imported, False)}  revision: {imported.revision}")
    if not written and imported is None:
        lines.append("nothing to apply")
    return "\n".join(lines)


def add_commands(subparsers) -> None:
    importing = command(
        subparsers,
        "import-legacy",
        _import_legacy,
        _show,
        "map the old platform's global settings and account configs (JSON, JSON Lines) onto "
        "the catalog and apply them: account overrides in one import, global settings after",
    )
    importing.add_argument("file", metavar="FILE", help="a JSON document or JSON Lines file")
    importing.add_argument(
        "--dry-run", action="store_true", help="print how every value maps; apply nothing"
    )
    importing.add_argument(
        "--skip-unmapped",
        action="store_true",
        help="apply what maps and skip the rest (default: apply nothing unless everything maps)",
    )
