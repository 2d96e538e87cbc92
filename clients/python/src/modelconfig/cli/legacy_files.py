"""The old platform's model settings as exported: global string settings and account configs.

Two shapes, in one JSON document (an object or a list of objects) or as JSON Lines:

    {"openai_model": "gpt-4o-mini", "dalle_model": "dall-e-3", "runware_model": "runware:97@1"}
    {"account_id": "42", "openai_model_id": 1}
    {"account_id": "43", "openai_model": "gpt-4o"}

An object without `account_id` holds global settings, one with it an account's overrides. Every
other key names a slot, as `<slot>` or `<slot>_id`; a value is a model id, name or alias. A null
or empty value sets nothing (the old "no override").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import CommandError


@dataclass(frozen=True)
class LegacyValue:
    """One key of one object, as the file has it."""

    line: int  # the line (JSON Lines), or the object's position in a JSON list
    account_id: str | None  # None: a global setting
    key: str
    value: object


def _objects(path: Path, text: str) -> list[tuple[int, object]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        pass  # not one document: JSON Lines
    else:
        items = document if isinstance(document, list) else [document]
        return list(enumerate(items, start=1))
    found = []
    for line, row in enumerate(text.splitlines(), start=1):
        if not row.strip():
            continue
        try:
            found.append((line, json.loads(row)))
        except json.JSONDecodeError as exc:
            raise CommandError(
                f"{path}:{line}: neither a JSON document nor JSON Lines ({exc.msg})",
                reason="BAD_FILE",
            ) from exc
    return found


def read_legacy(path: Path) -> list[LegacyValue]:
    """Every non-empty setting of the file, in order; CommandError for what is not one."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text", reason="BAD_FILE") from exc
    values = []
    for line, item in _objects(path, text):
        if not isinstance(item, dict):
            raise CommandError(f"{path}:{line}: expected a JSON object", reason="BAD_FILE")
        account = item.get("account_id")
        if "account_id" in item and (
            isinstance(account, bool)
            or not isinstance(account, str | int)
            or not str(account).strip()
        ):
            raise CommandError(
                f"{path}:{line}: account_id must be a non-empty string or number",
                reason="BAD_FILE",
            )
        for key, value in item.items():
            if key != "account_id" and value not in (None, ""):
                values.append(
                    LegacyValue(line, None if account is None else str(account), key, value)
                )
    return values
