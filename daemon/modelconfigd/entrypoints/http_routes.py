"""The HTTP routes of the service, read from the proto's `google.api.http` annotations.

Each RPC's HttpRule (and its additional bindings) becomes a Route: a method, a path template
(`/v1/models/{model_id}:retire`) compiled to a pattern, and where the request comes from, as
grpc-gateway does it: the body (`*`: the whole request; a field name: that field), the path
variables, and for the rest the query parameters (`?pageSize=10&provider=openai`, dotted for
nested fields, repeated fields by repeating the key). JSON is protobuf's own mapping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, json_format, message, message_factory

from ..domain.errors import InvalidArgument
from . import json_masks

_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")
_KINDS = ("get", "put", "post", "delete", "patch")
_FIELD_MASK = "google.protobuf.FieldMask"
# Message types whose JSON form is a single string (a query parameter's value fills them whole).
_STRING_MESSAGES = frozenset({
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
})


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one RPC."""

    http_method: str  # GET, POST, PATCH, DELETE
    template: str  # as annotated, e.g. /v1/models/{model_id}:retire
    pattern: re.Pattern[str]  # matches the raw (still percent-encoded) path
    variables: tuple[str, ...]  # field paths, in the order of the pattern's groups
    body: str  # "" (no body), "*" (the whole request) or a field of the request
    rpc: descriptor.MethodDescriptor

    @property
    def response_class(self) -> type[message.Message]:
        return message_factory.GetMessageClass(self.rpc.output_type)

    @property
    def verb(self) -> str:
        """The custom method (AIP-136) after the last `:`, if any: `retire`, `resolve`."""
        last = self.template.rsplit("/", 1)[-1]
        return last.rsplit(":", 1)[1] if ":" in _VARIABLE.sub("", last) else ""

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The percent-decoded path variables if `raw_path` fits the template, else None."""
        found = self.pattern.fullmatch(raw_path)
        if found is None:
            return None
        values = found.groups()
        return {name: unquote(value) for name, value in zip(self.variables, values, strict=True)}

    def request(self, variables: Mapping[str, str], query: Iterable[tuple[str, str]], body: bytes):
        """The RPC's request message from the parts of an HTTP request; InvalidArgument (400)
        for what does not fit it."""
        document: dict = {}
        if self.body:
            parsed = _json_object(body)
            document = parsed if self.body == "*" else {self.body: parsed}
        elif body.strip():
            raise InvalidArgument.field(
                "body",
                f"{self.http_method} {self.template} takes no body: send the fields as query "
                "parameters",
                reason="UNEXPECTED_BODY",
            )
        if self.body != "*":  # grpc-gateway's rule: with a `*` body the query is not read
            _merge_query(document, query, self.rpc.input_type, self.body)
        request = message_factory.GetMessageClass(self.rpc.input_type)()
        masks = _take_masks(document, self.rpc.input_type)
        _parse(document, request)
        for name, paths in masks.items():
            getattr(request, name).paths.extend(paths)
        for path, value in variables.items():
            _set_path(request, path, value)
        return request


def _json_object(body: bytes) -> dict:
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidArgument.field(
            "body", f"the body is not JSON: {exc}", reason="MALFORMED_REQUEST"
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidArgument.field(
            "body", "the body must be a JSON object", reason="MALFORMED_REQUEST"
        )
    return parsed


def _parse(document: dict, request: message.Message) -> None:
    try:
        json_format.ParseDict(document, request)
    except (json_format.ParseError, RecursionError) as exc:  # nesting deeper than Python's
        raise InvalidArgument.field(
            "request",
            f"the request does not fit {request.DESCRIPTOR.full_name}: {exc}",
            reason="MALFORMED_REQUEST",
        ) from exc


def _take_masks(document: dict, message_type: descriptor.Descriptor) -> dict[str, list[str]]:
    """The request's FieldMasks, taken out of `document` and read as json_masks reads them
    (json_format cannot read a path like `inputPricePer1mTokens` back)."""
    masks = {}
    for field in message_type.fields:
        if field.message_type is None or field.message_type.full_name != _FIELD_MASK:
            continue
        for key in (field.name, field.json_name):
            if key not in document:
                continue
            value = document.pop(key)
            if isinstance(value, dict) and set(value) <= {"paths"}:
                value = ",".join(value.get("paths") or ())  # the {"paths": [...]} object form
            if not isinstance(value, str):
                raise InvalidArgument.field(
                    key, "a field mask is a string of comma-separated paths",
                    reason="MALFORMED_REQUEST",
                )
            names = json_masks.json_names(message_type.file)
            paths = (path.strip() for path in value.split(","))
            masks[field.name] = [json_masks.snake_path(path, names) for path in paths if path]
    return masks


def _field(message_type: descriptor.Descriptor, name: str) -> descriptor.FieldDescriptor | None:
    """A field by its proto name (`page_size`) or its JSON name (`pageSize`)."""
    found = message_type.fields_by_name.get(name)
    if found is not None:
        return found
    return next((f for f in message_type.fields if f.json_name == name), None)


def _merge_query(
    document: dict,
    query: Iterable[tuple[str, str]],
    message_type: descriptor.Descriptor,
    body_field: str,
) -> None:
    """Query parameters into `document` (proto field names, JSON values), dotted keys nested."""
    for key, value in query:
        unknown = InvalidArgument.field(
            key,
            f"{message_type.full_name} has no field {key!r} to fill from the query",
            reason="UNKNOWN_QUERY_PARAMETER",
        )
        target, kind = document, message_type
        parts = key.split(".")
        for depth, part in enumerate(parts):
            field = _field(kind, part)
            if field is None or (depth == 0 and field.name == body_field):
                raise unknown
            last = depth == len(parts) - 1
            is_message = field.type == descriptor.FieldDescriptor.TYPE_MESSAGE
            if not last:
                if not is_message or field.is_repeated:
                    raise unknown
                if field.message_type.full_name in _STRING_MESSAGES:
                    raise unknown  # a mask or a time is one value, not fields (`updateMask.paths`)
                target = target.setdefault(field.name, {})
                if not isinstance(target, dict):  # `?model=x&model.id=1`
                    raise InvalidArgument.field(
                        key, "given more than once", reason="REPEATED_QUERY_PARAMETER"
                    )
                kind = field.message_type
                continue
            if is_message and field.message_type.full_name not in _STRING_MESSAGES:
                raise InvalidArgument.field(
                    key, "a message field cannot be filled from the query", reason="INVALID_QUERY"
                )
            converted = _scalar(field, key, value)
            if field.is_repeated:
                target.setdefault(field.name, []).append(converted)
            elif field.name in target:
                raise InvalidArgument.field(
                    key, "given more than once", reason="REPEATED_QUERY_PARAMETER"
                )
            else:
                target[field.name] = converted


def _scalar(field: descriptor.FieldDescriptor, key: str, value: str) -> object:
    """A query or path value as JSON would carry it: JSON's parser takes integers, enums,
    timestamps and field masks as strings, but booleans only as booleans."""
    if field.type != descriptor.FieldDescriptor.TYPE_BOOL:
        return value
    if value.lower() in ("true", "1", ""):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise InvalidArgument.field(key, f"{value!r} is not true or false", reason="MALFORMED_REQUEST")


def _set_path(request: message.Message, path: str, value: str) -> None:
    """A path variable (`slot`, `model.id`) into the request, after the body: the path wins."""
    *parents, leaf = path.split(".")
    target = request
    for part in parents:
        target = getattr(target, part)
    field = target.DESCRIPTOR.fields_by_name[leaf]
    _parse_into({leaf: _scalar(field, path, value)}, target)


def _parse_into(document: dict, target: message.Message) -> None:
    try:
        json_format.ParseDict(document, target)
    except json_format.ParseError as exc:
        field = next(iter(document))
        raise InvalidArgument.field(
            field, f"the path gives a malformed {field}: {exc}", reason="MALFORMED_REQUEST"
        ) from exc


def _compile(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    if not template.startswith("/") or re.search(r"\{[^}]*[=*]", template):
        raise ValueError(f"unsupported path template {template!r}: only /literal/{{field}}")
    variables, pieces, position = [], [], 0
    for found in _VARIABLE.finditer(template):
        pieces.append(re.escape(template[position : found.start()]))
        pieces.append("([^/]+)")  # one segment; a verb after it is matched by what follows
        variables.append(found.group(1))
        position = found.end()
    pieces.append(re.escape(template[position:]))
    if ":" not in _VARIABLE.sub("", template.rsplit("/", 1)[-1]):
        # grpc-gateway's rule: what follows the last `:` of the last segment is a verb, so a
        # template without one does not take `/v1/models/7:nosuchverb` (404, not a bad id).
        pieces.insert(0, "(?!.*:[^/]*$)")
    return re.compile("".join(pieces)), tuple(variables)


def _bindings(rule: http_pb2.HttpRule) -> Iterable[http_pb2.HttpRule]:
    yield rule
    yield from rule.additional_bindings


def routes_of(service: descriptor.ServiceDescriptor) -> list[Route]:
    """Every binding of every RPC of `service`, custom methods (`:verb`) first: then
    `/v1/models/{model_id}` never takes `/v1/models/7:usage`, whose id would be `7:usage`."""
    found = []
    for rpc in service.methods:
        options = rpc.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        for rule in _bindings(options.Extensions[annotations_pb2.http]):
            kind = rule.WhichOneof("pattern")
            if kind not in _KINDS:
                raise ValueError(f"{rpc.full_name}: unsupported HTTP rule {kind!r}")
            template = getattr(rule, kind)
            pattern, variables = _compile(template)
            found.append(Route(kind.upper(), template, pattern, variables, rule.body, rpc))
    return sorted(found, key=lambda route: not route.verb)
