"""FieldMasks in JSON for paths protobuf's JSON mapping cannot carry, such as `..._per_1m_...`.

The mapping writes a FieldMask as one string of lowerCamelCase paths, and refuses a path that
would not come back the same (`input_price_per_1m_tokens` gives `inputPricePer1mTokens`, read
back as `input_price_per1m_tokens`): json_format raises on such a mask, so a change that touched
a price could not be printed, nor an update_mask name a price. Here masks are written as the
mapping writes them (each word capitalized, joined by commas), and read back through the JSON
names the package's fields really have, or as snake_case paths (which grpc-gateway accepts).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from google.protobuf import descriptor, message

_FIELD_MASK = "google.protobuf.FieldMask"


def camel_path(path: str) -> str:
    """`input_price_per_1m_tokens` as protobuf names its JSON field: `inputPricePer1mTokens`."""
    return ".".join(_camel(part) for part in path.split("."))


def _camel(word: str) -> str:
    head, *rest = word.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@functools.cache
def holds_mask(kind: descriptor.Descriptor) -> bool:
    """Whether a message of this type can hold a FieldMask, at any depth (cached per type)."""
    pending, seen = [kind], {kind.full_name}
    while pending:
        for field in pending.pop().fields:
            inner = field.message_type
            if inner is None or inner.full_name in seen:
                continue
            if inner.full_name == _FIELD_MASK:
                return True
            seen.add(inner.full_name)
            pending.append(inner)
    return False


def _mask_fields(
    reply: message.Message,
) -> Iterator[tuple[descriptor.FieldDescriptor, message.Message | list[message.Message]]]:
    """The fields set in `reply` that are or may hold FieldMasks (maps hold none here)."""
    for field, value in reply.ListFields():
        inner = field.message_type
        if inner is None or inner.GetOptions().map_entry:
            continue
        if inner.full_name == _FIELD_MASK or holds_mask(inner):
            yield field, value


def clear_masks(reply: message.Message) -> None:
    """Clears every FieldMask in `reply` (a copy the caller owns), so json_format can print it."""
    for field, value in list(_mask_fields(reply)):
        if field.message_type.full_name == _FIELD_MASK:
            reply.ClearField(field.name)
        else:
            for item in value if field.is_repeated else (value,):
                clear_masks(item)


def put_masks(reply: message.Message, document: dict) -> None:
    """Writes the FieldMasks of `reply` into `document`, its JSON printed without them."""
    for field, value in _mask_fields(reply):
        if field.message_type.full_name == _FIELD_MASK:
            document[field.json_name] = ",".join(camel_path(p) for p in value.paths)
        elif field.is_repeated:
            for item, printed in zip(value, document[field.json_name], strict=True):
                put_masks(item, printed)
        else:
            put_masks(value, document[field.json_name])


def snake_path(path: str, json_names: dict[str, str]) -> str:
    """A mask path as sent (`inputPricePer1mTokens` or `input_price_per_1m_tokens`) as the field
    path it names; a word no field has is converted by the mapping's own rule."""
    return ".".join(json_names.get(word) or _snake(word) for word in path.split("."))


def _snake(word: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in word)


@functools.cache
def json_names(file: descriptor.FileDescriptor) -> dict[str, str]:
    """Every field of the messages a file and its dependencies define: JSON name -> name."""
    names: dict[str, str] = {}
    pending = [file]
    seen = {file.name}
    while pending:
        current = pending.pop()
        kinds = list(current.message_types_by_name.values())
        while kinds:
            kind = kinds.pop()
            kinds.extend(kind.nested_types)
            for field in kind.fields:
                names.setdefault(field.json_name, field.name)
        for dependency in current.dependencies:
            if dependency.name not in seen:
                seen.add(dependency.name)
                pending.append(dependency)
    return names
