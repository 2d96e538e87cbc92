"""Conversions between protobuf messages and the domain's value objects."""

from __future__ import annotations

from typing import Any

from modelconfig.v1 import resources_pb2 as pb

from ..domain.errors import InvalidArgument
from ..domain.model import Model, ModelType, Source
from ..domain.prices import price_text
from ..domain.validation import MODEL_FIELDS
from ..service_layer.services import SlotView

MODEL_TYPE_TO_PB = {ModelType.TEXT: pb.MODEL_TYPE_TEXT, ModelType.IMAGE: pb.MODEL_TYPE_IMAGE}
MODEL_TYPE_FROM_PB = {v: k for k, v in MODEL_TYPE_TO_PB.items()}
SOURCE_TO_PB = {
    Source.ACCOUNT: pb.SOURCE_ACCOUNT,
    Source.GLOBAL: pb.SOURCE_GLOBAL,
    Source.DEFAULT: pb.SOURCE_DEFAULT,
}
# Output-only and identifier fields: ignored in an update mask, as AIP-134 and AIP-203 ask.
IGNORED_MASK_PATHS = frozenset({"id", "label"})


def model_type_from_pb(value: int, field: str) -> ModelType | None:
    """The domain's type; None for MODEL_TYPE_UNSPECIFIED; an unknown number is refused."""
    if value == pb.MODEL_TYPE_UNSPECIFIED:
        return None
    model_type = MODEL_TYPE_FROM_PB.get(value)
    if model_type is None:
        raise InvalidArgument.field(
            field, f"{value} is not a ModelType", reason="INVALID_MODEL_TYPE", model_type=value
        )
    return model_type


def model_to_pb(model: Model) -> pb.Model:
    return pb.Model(
        id=model.id,
        model_name=model.model_name,
        display_name=model.display_name,
        provider=model.provider,
        model_type=MODEL_TYPE_TO_PB[model.model_type],
        is_active=model.is_active,
        input_price_per_1m_tokens=price_text(model.input_price_per_1m_tokens),
        output_price_per_1m_tokens=price_text(model.output_price_per_1m_tokens),
        price_per_image=price_text(model.price_per_image),
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        aliases=model.aliases,
        label=model.label,
    )


def slot_setting_to_pb(view: SlotView) -> pb.SlotSetting:
    setting = pb.SlotSetting(
        slot=view.slot.name,
        required_provider=view.slot.required_provider,
        required_model_type=MODEL_TYPE_TO_PB[view.slot.required_model_type],
        default_model=model_to_pb(view.default_model),
    )
    if view.model is not None:
        setting.model.CopyFrom(model_to_pb(view.model))
    return setting


def model_fields_from_pb(message: pb.Model) -> dict[str, Any]:
    """Every writable field of a Model message as the domain's raw values."""
    return {
        "model_name": message.model_name,
        "display_name": message.display_name,
        "provider": message.provider,
        "model_type": model_type_from_pb(message.model_type, "model.model_type"),
        "is_active": message.is_active,
        "input_price_per_1m_tokens": message.input_price_per_1m_tokens,
        "output_price_per_1m_tokens": message.output_price_per_1m_tokens,
        "price_per_image": message.price_per_image,
        "context_window": message.context_window,
        "max_output_tokens": message.max_output_tokens,
        "aliases": list(message.aliases),
    }


def update_changes(message: pb.Model, mask_paths: list[str]) -> dict[str, Any]:
    """The fields an update changes (AIP-134): the mask's paths, `*` for all, or when there is no
    mask every populated field. Unknown paths are kept so the service can reject them by name."""
    values = model_fields_from_pb(message)
    if not mask_paths:
        populated = {field.name for field, _ in message.ListFields()}
        paths = [name for name in MODEL_FIELDS if name in populated]
    elif "*" in mask_paths:
        # Any other path beside `*` must still be valid: keep the unknown ones to be refused.
        extra = [p for p in mask_paths if p != "*" and p not in MODEL_FIELDS]
        paths = list(MODEL_FIELDS) + [p for p in extra if p not in IGNORED_MASK_PATHS]
    else:
        paths = [p for p in dict.fromkeys(mask_paths) if p not in IGNORED_MASK_PATHS]
    return {p: values.get(p) for p in paths}

