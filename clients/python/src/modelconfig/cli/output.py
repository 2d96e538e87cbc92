"""modelconfigctl's output: tables, aligned fields, English phrases, and JSON or YAML."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from decimal import Decimal

from google.protobuf import json_format
from google.protobuf.message import Message

from ..v1 import resources_pb2 as pb
from .errors import CommandError

TYPES = {"text": pb.MODEL_TYPE_TEXT, "image": pb.MODEL_TYPE_IMAGE}


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, headers first."""
    lines = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def fields(pairs: Sequence[tuple[str, object]]) -> str:
    """`key: value` lines with the values aligned."""
    width = max(len(key) for key, _ in pairs) + 1
    return "\n".join(f"{key + ':':<{width}} {value}" for key, value in pairs)


def footer(**values: object) -> str:
    return "  ".join(f"{key}: {value}" for key, value in values.items())


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 override`, `2 overrides`, `1,000 accounts`."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def a(phrase: str) -> str:
    """`an image model`, `a text model`: the article by the first letter, which fits our words."""
    return f"{'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"


def model_type(value: pb.ModelType.ValueType) -> str:
    return pb.ModelType.Name(value).removeprefix("MODEL_TYPE_").lower()


def source(value: pb.Source.ValueType) -> str:
    return pb.Source.Name(value).removeprefix("SOURCE_").lower()


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def name(model: pb.Model) -> str:
    return model.model_name or "-"


def scope(account_id: str | None) -> str:
    return f"account {account_id}" if account_id else "global"


def money(text: str) -> str:
    """`-9.85` -> `-$9.85`, `2.7` -> `$2.70`, `0.125` -> `$0.125`: exact, at least two decimals.

    The daemon's admin label shows prices the same way (modelconfigd's domain/prices.py); the
    command line does not import the daemon, which an operator's machine need not have.
    """
    if not text:
        return ""
    amount = Decimal(text)
    exponent = amount.normalize().as_tuple().exponent
    places = max(2, -exponent if isinstance(exponent, int) else 0)
    return f"{'-' if amount < 0 else ''}${abs(amount):.{places}f}"


def data(response: object) -> object:
    """Plain data of a response: a message in the proto JSON mapping (int64 as strings)."""
    if isinstance(response, Message):
        return json_format.MessageToDict(response, preserving_proto_field_name=True)
    if isinstance(response, dict):
        return {key: data(value) for key, value in response.items()}
    if isinstance(response, list | tuple):
        return [data(item) for item in response]
    return response


def render(response: object, output: str, show, args) -> str:
    """What a command prints: its table, or its response as JSON or YAML.

    A response that is already text (a completion script) is printed as it is.
    """
    if isinstance(response, str):
        return response
    if output == "table":
        return show(response, args)
    if output == "json":
        return json.dumps(data(response), indent=2, ensure_ascii=False)
    try:
        import yaml  # the [cli] extra: only --output yaml needs it
    except ImportError:
        raise CommandError(
            "--output yaml needs PyYAML: pip install 'modelconfig-client[cli]'",
            reason="MISSING_EXTRA",
        ) from None
    return yaml.safe_dump(data(response), sort_keys=False, allow_unicode=True).rstrip("\n")
