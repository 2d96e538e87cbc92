"""modelconfigctl's output: tables, aligned fields, footers and the short names it prints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from google.protobuf import json_format
from google.protobuf.message import Message

from modelconfig.v1 import resources_pb2 as pb

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


def model_type(value: int) -> str:
    return pb.ModelType.Name(value).removeprefix("MODEL_TYPE_").lower()


def source(value: int) -> str:
    return pb.Source.Name(value).removeprefix("SOURCE_").lower()


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def name(model: pb.Model) -> str:
    return model.model_name or "-"


def scope(account_id: str) -> str:
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


def model_ref(text: str) -> int | str:
    """A model id if the text is all digits, else a name or alias."""
    return int(text) if text.isascii() and text.isdigit() else text


def as_json(message: Message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


def command(subparsers, name: str, run, show, help: str):
    """A subcommand that calls `run(client, args)` and prints `show(response, args)`."""
    parser = subparsers.add_parser(name, help=help, description=help)
    parser.set_defaults(run=run, show=show)
    return parser
