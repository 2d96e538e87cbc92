"""Checks of request values that need no state: ids, names, slots, and whole model definitions."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from .changes import Scope, model_values
from .errors import FieldViolation, InvalidArgument
from .model import ImagePrice, Model, ModelType, PriceSource, Slot
from .prices import PriceError, parse_price

# Account ids come from other systems (integers, UUIDs, slugs): allow what those use, and nothing
# that could smuggle whitespace or control characters into logs.
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
# Model names and aliases are provider identifiers such as `gpt-4o-mini` or `runware:97@1`.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,99}$")
_PROVIDER = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_MAX_DISPLAY_NAME = 200
_MAX_ALIASES = 32
IMAGE_SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")
IMAGE_QUALITY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_MAX_IMAGE_PRICES = 32
_MAX_URL = 2000
_MAX_INT32 = 2**31 - 1

PRICE_FIELDS = (
    "input_price_per_1m_tokens",
    "cached_input_price_per_1m_tokens",
    "output_price_per_1m_tokens",
    "price_per_image",
)
MODEL_FIELDS = (
    "model_name",
    "display_name",
    "provider",
    "model_type",
    "is_active",
    "input_price_per_1m_tokens",
    "cached_input_price_per_1m_tokens",
    "output_price_per_1m_tokens",
    "price_per_image",
    "context_window",
    "max_output_tokens",
    "aliases",
    "image_prices",
    "price_sources",
    "deprecation_date",
    "successor_id",
)


def account_id(value: str, field: str = "account_id") -> str:
    if value == "":
        raise InvalidArgument.field(field, "is required", reason="ACCOUNT_ID_REQUIRED")
    if not _ACCOUNT_ID.fullmatch(value):
        raise InvalidArgument.field(
            field,
            f"{value!r} is not a valid account id (1-128 characters: letters, digits, ._:@/-)",
            reason="INVALID_ACCOUNT_ID",
            account_id=value,
        )
    return value


def slot_name(value: str, known: Collection[str], field: str = "slot") -> str:
    if value not in known:
        raise InvalidArgument.field(
            field,
            f"unknown slot {value!r}; known slots: {', '.join(known)}",
            reason="UNKNOWN_SLOT",
            slot=value,
        )
    return value


# Far beyond any catalog, and far enough below 2**63 that the next id still fits in a column.
MAX_MODEL_ID = 2**53


def model_id(value: int, field: str = "model_id") -> int:
    if not 0 < value <= MAX_MODEL_ID:
        raise InvalidArgument.field(
            field,
            f"{value} is not a valid model id (ids are positive, at most 2**53)",
            reason="INVALID_MODEL_ID",
            model_id=value,
        )
    return value


def model_name(value: str, field: str = "model_name") -> str:
    if not _MODEL_NAME.fullmatch(value):
        raise InvalidArgument.field(
            field,
            f"{value!r} is not a valid model name (1-100 characters: letters, digits, ._:@/+-)",
            reason="INVALID_MODEL_NAME",
            model_name=value,
        )
    return value


def _field_faults(fields: Mapping[str, Any]) -> list[FieldViolation]:
    """Each given field checked on its own; `fields` may hold any subset of MODEL_FIELDS."""
    bad: list[FieldViolation] = []

    def fault(name: str, description: str) -> None:
        bad.append(FieldViolation(f"model.{name}", description))

    if "model_name" in fields:
        name = fields["model_name"]
        if name == "":
            fault("model_name", "is required")
        elif not _MODEL_NAME.fullmatch(name):
            fault("model_name", f"{name!r} is not a valid model name (letters, digits, ._:@/+-)")
    if "provider" in fields:
        provider = fields["provider"]
        if provider == "":
            fault("provider", "is required")
        elif not _PROVIDER.fullmatch(provider):
            fault("provider", f"{provider!r} is not a valid provider (lower case, e.g. 'openai')")
    if "model_type" in fields and fields["model_type"] is None:
        fault("model_type", "is required: MODEL_TYPE_TEXT or MODEL_TYPE_IMAGE")
    if "display_name" in fields:
        display_name = fields["display_name"].strip()
        if len(display_name) > _MAX_DISPLAY_NAME or not display_name.isprintable():
            fault("display_name", f"must be printable and at most {_MAX_DISPLAY_NAME} characters")
    for price_field in PRICE_FIELDS:
        if price_field in fields:
            try:
                parse_price(fields[price_field])
            except PriceError as exc:
                fault(price_field, str(exc))
    for int_field in ("context_window", "max_output_tokens"):
        if int_field in fields and not 0 <= fields[int_field] <= _MAX_INT32:
            fault(int_field, "must be zero (not applicable) or a positive number of tokens")
    if "aliases" in fields:
        aliases = list(fields["aliases"])
        if len(aliases) > _MAX_ALIASES:
            fault("aliases", f"at most {_MAX_ALIASES} aliases")
        for i, alias in enumerate(aliases):
            if not _MODEL_NAME.fullmatch(alias):
                fault(f"aliases[{i}]", f"{alias!r} is not a valid alias (letters, digits, ._:@/+-)")
            elif alias in aliases[:i]:
                fault(f"aliases[{i}]", f"{alias!r} repeats another alias")
    if "image_prices" in fields:
        bad += _image_price_faults(fields["image_prices"])
    if "price_sources" in fields:
        bad += _price_source_faults(fields["price_sources"])
    deprecation = fields.get("deprecation_date")
    if deprecation and _day(deprecation) is None:
        fault("deprecation_date", f"{deprecation!r} is not a date (YYYY-MM-DD)")
    if "successor_id" in fields and not 0 <= (fields["successor_id"] or 0) <= MAX_MODEL_ID:
        fault("successor_id", "must be 0 (none) or the id of another model")
    return bad


def _day(text: str) -> date | None:
    """A `YYYY-MM-DD` date, or None when the text is not one."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _checked_day_fault(text: str, required: bool) -> str | None:
    if not text:
        return "is required (YYYY-MM-DD)" if required else None
    day = _day(text)
    if day is None:
        return f"{text!r} is not a date (YYYY-MM-DD)"
    # A day ahead of UTC is still today somewhere; further ahead was not checked yet.
    if day > datetime.now(UTC).date() + timedelta(days=1):
        return f"{text} is in the future: a price can only have been checked on a past day"
    return None


def _url_fault(text: str, required: bool) -> str | None:
    if not text:
        return "is required (the public page the price was checked against)" if required else None
    parts = urlsplit(text)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or len(text) > _MAX_URL
        or not text.isprintable()
        or " " in text
    ):
        return f"{text[:100]!r} is not an http or https URL"
    return None


def _image_price_faults(entries: Sequence[Mapping[str, str]]) -> list[FieldViolation]:
    bad: list[FieldViolation] = []
    if len(entries) > _MAX_IMAGE_PRICES:
        return [FieldViolation("model.image_prices", f"at most {_MAX_IMAGE_PRICES} entries")]
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(entries):
        where = f"model.image_prices[{i}]"
        if not IMAGE_SIZE.fullmatch(entry["size"]):
            bad.append(FieldViolation(f"{where}.size", "must be WIDTHxHEIGHT, e.g. 1024x1792"))
        if not IMAGE_QUALITY.fullmatch(entry["quality"]):
            bad.append(
                FieldViolation(f"{where}.quality", "must be a lower-case tier, e.g. standard")
            )
        try:
            if parse_price(entry["price"]) is None:
                bad.append(FieldViolation(f"{where}.price", "is required"))
        except PriceError as exc:
            bad.append(FieldViolation(f"{where}.price", str(exc)))
        for name, fault in (
            ("checked_on", _checked_day_fault(entry["checked_on"], required=False)),
            ("source_url", _url_fault(entry["source_url"], required=False)),
        ):
            if fault:
                bad.append(FieldViolation(f"{where}.{name}", fault))
        key = (entry["size"], entry["quality"])
        if key in seen:
            bad.append(FieldViolation(where, f"repeats size {key[0]} at quality {key[1]}"))
        seen.add(key)
    return bad


def _price_source_faults(entries: Sequence[Mapping[str, str]]) -> list[FieldViolation]:
    bad: list[FieldViolation] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"model.price_sources[{i}]"
        if entry["price"] not in PRICE_FIELDS:
            known = ", ".join(PRICE_FIELDS)
            bad.append(FieldViolation(f"{where}.price", f"must name a price field: {known}"))
        elif entry["price"] in seen:
            bad.append(FieldViolation(f"{where}.price", f"repeats {entry['price']}"))
        seen.add(entry["price"])
        for name, fault in (
            ("checked_on", _checked_day_fault(entry["checked_on"], required=True)),
            ("source_url", _url_fault(entry["source_url"], required=True)),
        ):
            if fault:
                bad.append(FieldViolation(f"{where}.{name}", fault))
    return bad


def _rejected(bad: list[FieldViolation]) -> InvalidArgument:
    summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
    return InvalidArgument(
        f"invalid model: {summary}",
        violations=bad,
        reason="INVALID_MODEL",
        metadata={"fields": ",".join(v.field for v in bad)},
    )


def check_fields(fields: Mapping[str, Any]) -> None:
    """InvalidArgument unless each given field is well-formed on its own (before any lookup)."""
    bad = _field_faults(fields)
    if bad:
        raise _rejected(bad)


_NONE_YET: dict[str, Any] = {
    "image_prices": [],
    "price_sources": [],
    "deprecation_date": "",
    "successor_id": None,
}


def build_model(model_id_: int, fields: Mapping[str, Any]) -> Model:
    """A `Model` from raw field values (prices as strings), or InvalidArgument naming every fault.

    `fields` holds every name of MODEL_FIELDS (the lifecycle and price sources may be left out:
    none); `model_type` is None when the request left it unset.
    """
    fields = {**_NONE_YET, **fields}
    bad = _field_faults(fields)
    model_type = fields["model_type"]
    prices = {}
    for price_field in PRICE_FIELDS:
        try:
            prices[price_field] = parse_price(fields[price_field])
        except PriceError:
            prices[price_field] = None  # already reported
    if model_type is ModelType.TEXT and prices["price_per_image"] is not None:
        bad.append(
            FieldViolation(
                "model.price_per_image", "a text model is priced per token, not per image"
            )
        )
    if model_type is ModelType.IMAGE:
        for token_field in PRICE_FIELDS[:3]:
            if prices[token_field] is not None:
                bad.append(
                    FieldViolation(
                        f"model.{token_field}", "an image model is priced per image, not per token"
                    )
                )
    if model_type is ModelType.TEXT and fields["image_prices"]:
        bad.append(
            FieldViolation("model.image_prices", "a text model is priced per token, not per image")
        )
    for i, entry in enumerate(fields["price_sources"]):
        if entry["price"] in prices and prices[entry["price"]] is None:
            bad.append(
                FieldViolation(
                    f"model.price_sources[{i}].price",
                    f"the model has no {entry['price']}: a source needs a price to vouch for",
                )
            )
    if fields["successor_id"] and fields["successor_id"] == model_id_:
        bad.append(FieldViolation("model.successor_id", "a model cannot succeed itself"))
    name = fields["model_name"]
    for i, alias in enumerate(fields["aliases"]):
        if alias == name:
            bad.append(FieldViolation(f"model.aliases[{i}]", f"{alias!r} repeats the model's name"))
    if bad:
        raise _rejected(bad)
    assert model_type is not None
    return Model(
        id=model_id_,
        model_name=name,
        display_name=fields["display_name"].strip() or name,
        provider=fields["provider"],
        model_type=model_type,
        is_active=bool(fields["is_active"]),
        context_window=fields["context_window"],
        max_output_tokens=fields["max_output_tokens"],
        aliases=tuple(fields["aliases"]),
        image_prices=tuple(
            ImagePrice(
                e["size"],
                e["quality"],
                parse_price(e["price"]) or Decimal(0),
                _day(e["checked_on"]),
                e["source_url"],
            )
            for e in fields["image_prices"]
        ),
        price_sources=tuple(
            PriceSource(e["price"], date.fromisoformat(e["checked_on"]), e["source_url"])
            for e in fields["price_sources"]
        ),
        deprecation_date=_day(fields["deprecation_date"]) if fields["deprecation_date"] else None,
        successor_id=fields["successor_id"] or None,
        **prices,
    )


def model_fields(model: Model) -> dict[str, Any]:
    """The raw field values of a model: the inverse of build_model, used to apply updates."""
    return {**model_values(model), "model_type": model.model_type}


# -- slots -------------------------------------------------------------------------------------

_SLOT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SLOT_FIELDS = ("display_name", "required_provider", "required_model_type", "default_model_id")


def slot_fields(fields: Mapping[str, Any], *, creating: bool) -> None:
    """InvalidArgument unless each given slot field is well-formed (every one when creating)."""
    bad: list[FieldViolation] = []

    def fault(name: str, description: str) -> None:
        bad.append(FieldViolation(f"slot.{name}", description))

    if creating:
        name = fields["name"]
        if name == "":
            fault("name", "is required")
        elif not _SLOT_NAME.fullmatch(name):
            fault("name", f"{name!r} is not a valid slot name (lower case letters, digits, _)")
    if "display_name" in fields:
        display_name = fields["display_name"].strip()
        if len(display_name) > _MAX_DISPLAY_NAME or not display_name.isprintable():
            fault("display_name", f"must be printable and at most {_MAX_DISPLAY_NAME} characters")
    if "required_provider" in fields:
        provider = fields["required_provider"]
        if provider == "":
            fault("required_provider", "is required")
        elif not _PROVIDER.fullmatch(provider):
            fault("required_provider", f"{provider!r} is not a valid provider (e.g. 'openai')")
    if "required_model_type" in fields and fields["required_model_type"] is None:
        fault("required_model_type", "is required: MODEL_TYPE_TEXT or MODEL_TYPE_IMAGE")
    if "default_model_id" in fields and fields["default_model_id"] <= 0:
        fault("default_model_id", "is required: the id of an active model of the slot's kind")
    if bad:
        summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
        raise InvalidArgument(
            f"invalid slot: {summary}",
            violations=bad,
            reason="INVALID_SLOT",
            metadata={"fields": ",".join(v.field for v in bad)},
        )


def build_slot(fields: Mapping[str, Any]) -> Slot:
    """A new slot from raw field values (every one of SLOT_FIELDS and its name), or
    InvalidArgument naming every fault."""
    slot_fields(fields, creating=True)
    return Slot(
        name=fields["name"],
        display_name=fields["display_name"].strip() or fields["name"],
        required_provider=fields["required_provider"],
        required_model_type=fields["required_model_type"],
        default_model_id=fields["default_model_id"],
    )


# -- writes ------------------------------------------------------------------------------------


def write_scope(scope: Scope | None, account: str) -> Scope:
    """The scope a settings write names, or InvalidArgument when it is missing or contradicted.

    An empty account id alone never means "global": an unset variable must not change every
    tenant's model.
    """
    if scope is Scope.GLOBAL:
        if account:
            raise InvalidArgument.field(
                "account_id",
                f"must be empty for SCOPE_GLOBAL, but is {account!r}",
                reason="SCOPE_CONFLICT",
                scope="SCOPE_GLOBAL",
                account_id=account,
            )
        return Scope.GLOBAL
    if not account:
        if scope is Scope.ACCOUNT:
            raise InvalidArgument.field(
                "account_id",
                "is required for SCOPE_ACCOUNT",
                reason="SCOPE_CONFLICT",
                scope="SCOPE_ACCOUNT",
            )
        raise InvalidArgument.field(
            "scope",
            "is required when account_id is empty: SCOPE_GLOBAL writes the global setting; "
            "give account_id to write an account's override",
            reason="SCOPE_REQUIRED",
        )
    account_id(account)
    return Scope.ACCOUNT


def revision(value: int, field: str = "revision") -> int:
    if value <= 0:
        raise InvalidArgument.field(
            field,
            f"{value} is not a valid revision (revisions are positive)",
            reason="INVALID_REVISION",
            revision=value,
        )
    return value


_MAX_REQUEST_ID = 128
_MAX_REASON = 1000


def request_metadata(request_id: str, reason: str) -> None:
    """The `x-request-id` and `x-change-reason` a client sent, checked before they are kept."""
    if len(request_id) > _MAX_REQUEST_ID or not request_id.isprintable():
        raise InvalidArgument.field(
            "x-request-id",
            f"must be printable and at most {_MAX_REQUEST_ID} characters",
            reason="INVALID_REQUEST_ID",
        )
    if len(reason) > _MAX_REASON or not reason.isprintable():
        raise InvalidArgument.field(
            "x-change-reason",
            f"must be printable and at most {_MAX_REASON} characters",
            reason="INVALID_CHANGE_REASON",
        )
