"""Override files for `modelconfigctl import`: CSV (account_id,slot,model) or JSON Lines.

`model` is a model id (all digits) or a name or alias. Every record keeps its line number, so
the daemon can name a bad row by it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from modelconfig.v1 import model_config_service_pb2 as api

COLUMNS = ("account_id", "slot", "model")


class FileFormatError(Exception):
    """A line that is not a record at all (the daemon checks the values)."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")


def file_format(path: Path, given: str | None) -> str:
    if given:
        return given
    if path.suffix.lower() == ".csv":
        return "csv"
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    raise FileFormatError(path, 0, "cannot tell the format: name it .csv or .jsonl, or --format")


def _record(line: int, account_id: object, slot: object, model: object) -> api.OverrideRecord:
    record = api.OverrideRecord(line=line, account_id=str(account_id), slot=str(slot))
    if isinstance(model, int) or (isinstance(model, str) and model.isascii() and model.isdigit()):
        record.model_id = int(model)
    else:
        record.model_name = str(model)
    return record


def _csv_records(path: Path) -> Iterator[api.OverrideRecord]:
    # utf-8-sig: spreadsheets save CSV with a byte order mark, which would spoil the header.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            raise FileFormatError(path, 1, f"the header must be {','.join(COLUMNS)}")
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue
            if len(fields) != len(COLUMNS):
                raise FileFormatError(path, line, f"expected 3 columns, found {len(fields)}")
            yield _record(line, *(f.strip() for f in fields))


def _jsonl_records(path: Path) -> Iterator[api.OverrideRecord]:
    with path.open(encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                item = json.loads(text)
            except json.JSONDecodeError as exc:
                raise FileFormatError(path, line, f"not JSON: {exc.msg}") from exc
            if not isinstance(item, dict) or not set(COLUMNS) <= item.keys():
                raise FileFormatError(path, line, f"expected an object with {', '.join(COLUMNS)}")
            yield _record(line, item["account_id"], item["slot"], item["model"])


def read_records(path: Path, fmt: str) -> Iterator[api.OverrideRecord]:
    """The file's records in order; FileFormatError at the first line that is not one."""
    return _csv_records(path) if fmt == "csv" else _jsonl_records(path)
