"""modelconfigctl's output: tables, aligned fields, footers and the short names it prints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
