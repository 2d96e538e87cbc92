"""Conversions between protobuf messages and the domain's value objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import timestamp_pb2

from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

from ..domain.changes import Change, ChangeKind, Scope
from ..domain.costs import Estimate, amount_text
from ..domain.errors import InvalidArgument
from ..domain.model import Deprecation, Model, ModelType, Slot, Source
from ..domain.prices import price_text
from ..domain.state import Resolved, account_etag
from ..domain.validation import MODEL_FIELDS, SLOT_FIELDS
from ..service_layer.change_feed import FeedPart
from ..service_layer.configurations import ApplyOutcome
from ..service_layer.unit_of_work import AccountOverrides
from ..service_layer.views import SlotView

MODEL_TYPE_TO_PB = {ModelType.TEXT: pb.MODEL_TYPE_TEXT, ModelType.IMAGE: pb.MODEL_TYPE_IMAGE}
MODEL_TYPE_FROM_PB = {v: k for k, v in MODEL_TYPE_TO_PB.items()}
SOURCE_TO_PB = {
    Source.ACCOUNT: pb.SOURCE_ACCOUNT,
    Source.GLOBAL: pb.SOURCE_GLOBAL,
    Source.DEFAULT: pb.SOURCE_DEFAULT,
}
SCOPE_TO_PB = {Scope.GLOBAL: pb.SCOPE_GLOBAL, Scope.ACCOUNT: pb.SCOPE_ACCOUNT}
SCOPE_FROM_PB = {v: k for k, v in SCOPE_TO_PB.items()}
KIND_TO_PB = {
    ChangeKind.SEED: pb.CHANGE_KIND_SEED,
    ChangeKind.MODEL_CREATED: pb.CHANGE_KIND_MODEL_CREATED,
    ChangeKind.MODEL_UPDATED: pb.CHANGE_KIND_MODEL_UPDATED,
    ChangeKind.MODEL_DELETED: pb.CHANGE_KIND_MODEL_DELETED,
    ChangeKind.SLOT_CREATED: pb.CHANGE_KIND_SLOT_CREATED,
    ChangeKind.SLOT_UPDATED: pb.CHANGE_KIND_SLOT_UPDATED,
    ChangeKind.SETTING: pb.CHANGE_KIND_SETTING,
    ChangeKind.IMPORT: pb.CHANGE_KIND_IMPORT,
    ChangeKind.CATALOG: pb.CHANGE_KIND_CATALOG,
    ChangeKind.MODEL_RETIRED: pb.CHANGE_KIND_MODEL_RETIRED,
    ChangeKind.CONFIGURATION_APPLIED: pb.CHANGE_KIND_CONFIGURATION_APPLIED,
}
# Output-only and identifier fields: ignored in an update mask, as AIP-134 and AIP-203 ask.
IGNORED_MODEL_PATHS = frozenset({"id", "label"})
IGNORED_SLOT_PATHS = frozenset({"name", "default_model"})


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


def scope_from_pb(value: int) -> Scope | None:
    """The domain's scope; None for SCOPE_UNSPECIFIED; an unknown number is refused."""
    if value == pb.SCOPE_UNSPECIFIED:
        return None
    scope = SCOPE_FROM_PB.get(value)
    if scope is None:
        raise InvalidArgument.field(
            "scope", f"{value} is not a Scope", reason="INVALID_SCOPE", scope=value
        )
    return scope


DEPRECATION_FROM_PB = {
    pb.DEPRECATION_FILTER_SCHEDULED: Deprecation.SCHEDULED,
    pb.DEPRECATION_FILTER_PAST: Deprecation.PAST,
    pb.DEPRECATION_FILTER_CURRENT: Deprecation.CURRENT,
}


def deprecation_from_pb(value: int) -> Deprecation | None:
    """The listing's deprecation filter; None for every model; an unknown number is refused."""
    if value == pb.DEPRECATION_FILTER_UNSPECIFIED:
        return None
    found = DEPRECATION_FROM_PB.get(value)
    if found is None:
        raise InvalidArgument.field(
            "deprecation",
            f"{value} is not a DeprecationFilter",
            reason="INVALID_DEPRECATION_FILTER",
            deprecation=value,
        )
    return found


def configuration_to_pb(
    models: Sequence[Model], slots: Sequence[Slot], global_settings: Mapping[str, int]
) -> api.Configuration:
    return api.Configuration(
        models=[model_to_pb(m) for m in models],
        slots=[slot_to_pb(s) for s in slots],
        global_settings=[
            api.GlobalSetting(slot=s.name, model_id=global_settings[s.name])
            for s in slots
            if s.name in global_settings
        ],
    )


def apply_outcome_to_pb(outcome: ApplyOutcome, revision: int) -> api.ApplyConfigurationResponse:
    return api.ApplyConfigurationResponse(
        models_created=outcome.models_created,
        models_updated=outcome.models_updated,
        models_deleted=outcome.models_deleted,
        slots_created=outcome.slots_created,
        slots_updated=outcome.slots_updated,
        global_settings_changed=outcome.global_settings_changed,
        overrides_changed=outcome.overrides_changed,
        accounts_changed=outcome.accounts_changed,
        revision=revision,
    )


def account_overrides_to_pb(account: AccountOverrides) -> api.AccountOverrides:
    return api.AccountOverrides(
        account_id=account.account_id,
        overrides=[api.AccountOverride(slot=s, model_id=m) for s, m in account.overrides],
        etag=account_etag(account.revision),
    )


def model_to_pb(model: Model) -> pb.Model:
    return pb.Model(
        id=model.id,
        model_name=model.model_name,
        display_name=model.display_name,
        provider=model.provider,
        model_type=MODEL_TYPE_TO_PB[model.model_type],
        is_active=model.is_active,
        input_price_per_1m_tokens=price_text(model.input_price_per_1m_tokens),
        cached_input_price_per_1m_tokens=price_text(model.cached_input_price_per_1m_tokens),
        output_price_per_1m_tokens=price_text(model.output_price_per_1m_tokens),
        price_per_image=price_text(model.price_per_image),
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        aliases=model.aliases,
        label=model.label,
        image_prices=[
            pb.ImagePrice(
                size=p.size,
                quality=p.quality,
                price=price_text(p.price),
                checked_on=p.checked_on.isoformat() if p.checked_on else "",
                source_url=p.source_url,
            )
            for p in model.image_prices
        ],
        price_sources=[
            pb.PriceSource(
                price=s.price, checked_on=s.checked_on.isoformat(), source_url=s.source_url
            )
            for s in model.price_sources
        ],
        deprecation_date=model.deprecation_date.isoformat() if model.deprecation_date else "",
        successor_id=model.successor_id or 0,
    )


def resolved_to_pb(r: Resolved) -> pb.ResolvedSlot:
    message = pb.ResolvedSlot(
        slot=r.slot,
        model=model_to_pb(r.model),
        source=SOURCE_TO_PB[r.source],
        deprecated=r.deprecated,
    )
    if r.skipped_override is not None:
        message.skipped_override.CopyFrom(model_to_pb(r.skipped_override))
    return message


def slot_setting_to_pb(view: SlotView) -> pb.SlotSetting:
    setting = pb.SlotSetting(
        slot=view.slot.name,
        display_name=view.slot.display_name,
        required_provider=view.slot.required_provider,
        required_model_type=MODEL_TYPE_TO_PB[view.slot.required_model_type],
        default_model=model_to_pb(view.default_model),
    )
    if view.model is not None:
        setting.model.CopyFrom(model_to_pb(view.model))
    return setting


def slot_to_pb(slot: Slot, default_model: Model | None = None) -> pb.Slot:
    message = pb.Slot(
        name=slot.name,
        display_name=slot.display_name,
        required_provider=slot.required_provider,
        required_model_type=MODEL_TYPE_TO_PB[slot.required_model_type],
        default_model_id=slot.default_model_id,
    )
    if default_model is not None:
        message.default_model.CopyFrom(model_to_pb(default_model))
    return message


def model_fields_from_pb(message: pb.Model) -> dict[str, Any]:
    """Every writable field of a Model message as the domain's raw values."""
    return {
        "model_name": message.model_name,
        "display_name": message.display_name,
        "provider": message.provider,
        "model_type": model_type_from_pb(message.model_type, "model.model_type"),
        "is_active": message.is_active,
        "input_price_per_1m_tokens": message.input_price_per_1m_tokens,
        "cached_input_price_per_1m_tokens": message.cached_input_price_per_1m_tokens,
        "output_price_per_1m_tokens": message.output_price_per_1m_tokens,
        "price_per_image": message.price_per_image,
        "context_window": message.context_window,
        "max_output_tokens": message.max_output_tokens,
        "aliases": list(message.aliases),
        "image_prices": [
            {
                "size": p.size,
                "quality": p.quality,
                "price": p.price,
                "checked_on": p.checked_on,
                "source_url": p.source_url,
            }
            for p in message.image_prices
        ],
        "price_sources": [
            {"price": s.price, "checked_on": s.checked_on, "source_url": s.source_url}
            for s in message.price_sources
        ],
        "deprecation_date": message.deprecation_date,
        "successor_id": message.successor_id or None,
    }


def slot_fields_from_pb(message: pb.Slot) -> dict[str, Any]:
    """Every writable field of a Slot message as the domain's raw values (and its name)."""
    return {
        "name": message.name,
        "display_name": message.display_name,
        "required_provider": message.required_provider,
        "required_model_type": model_type_from_pb(
            message.required_model_type, "slot.required_model_type"
        ),
        "default_model_id": message.default_model_id,
    }


def _masked(
    message,
    mask_paths: Sequence[str],
    values: Mapping[str, Any],
    known: Sequence[str],
    ignored: frozenset[str],
) -> dict[str, Any]:
    """The fields an update changes (AIP-134): the mask's paths, `*` for all, or when there is no
    mask every populated field. Unknown paths are kept so the service can reject them by name."""
    if not mask_paths:
        populated = {field.name for field, _ in message.ListFields()}
        paths = [name for name in known if name in populated]
    elif "*" in mask_paths:
        # Any other path beside `*` must still be valid: keep the unknown ones to be refused.
        extra = [p for p in mask_paths if p != "*" and p not in known]
        paths = list(known) + [p for p in extra if p not in ignored]
    else:
        paths = [p for p in dict.fromkeys(mask_paths) if p not in ignored]
    return {p: values.get(p) for p in paths}


def model_update(message: pb.Model, mask_paths: Sequence[str]) -> dict[str, Any]:
    values = model_fields_from_pb(message)
    return _masked(message, mask_paths, values, MODEL_FIELDS, IGNORED_MODEL_PATHS)


def slot_update(message: pb.Slot, mask_paths: Sequence[str]) -> dict[str, Any]:
    values = slot_fields_from_pb(message)
    return _masked(message, mask_paths, values, SLOT_FIELDS, IGNORED_SLOT_PATHS)


# -- changes -----------------------------------------------------------------------------------


def timestamp_to_pb(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def timestamp_from_pb(message, field: str) -> datetime | None:
    """The time a Timestamp field holds, rounded up to the microsecond (changes are timed to the
    microsecond, so a bound inside one still orders them right); None when unset."""
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    try:
        micros = stamp.seconds * 1_000_000 + -(-stamp.nanos // 1000)
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument.field(
            field, "is not a valid timestamp", reason="INVALID_TIMESTAMP"
        ) from exc


def _model_values_to_pb(model_id: int, values: Mapping[str, Any]) -> pb.Model:
    """Recorded model values (some or all fields) as a Model message."""
    fields = {**values}
    if "model_type" in fields:
        fields["model_type"] = MODEL_TYPE_TO_PB[ModelType(fields["model_type"])]
    if "successor_id" in fields:
        fields["successor_id"] = fields["successor_id"] or 0
    return pb.Model(id=model_id, **fields)


def _values_to_pb(change: Change, values: Mapping[str, Any] | None) -> pb.ChangeValues | None:
    if values is None:
        return None
    message = pb.ChangeValues()
    if change.kind is ChangeKind.SETTING:
        message.model_id = values.get("model_id") or 0
    elif change.kind in (
        ChangeKind.MODEL_CREATED,
        ChangeKind.MODEL_UPDATED,
        ChangeKind.MODEL_DELETED,
    ):
        if values or change.kind is ChangeKind.MODEL_UPDATED:
            message.model.CopyFrom(_model_values_to_pb(change.model_id, values))
    elif change.kind is ChangeKind.CONFIGURATION_APPLIED:
        names = [f.name for f in pb.AppliedConfiguration.DESCRIPTOR.fields]
        # .get: a field added later is absent from changes recorded before it.
        message.applied.CopyFrom(pb.AppliedConfiguration(**{n: values.get(n, []) for n in names}))
    elif change.kind is ChangeKind.MODEL_RETIRED:
        message.model.CopyFrom(_model_values_to_pb(change.model_id, values["model"]))
        message.retirement.CopyFrom(
            pb.Retirement(
                global_slots=values["global_slots"],
                default_slots=values["default_slots"],
                model_id=values["model_id"],
            )
        )
    elif change.kind in (ChangeKind.SLOT_CREATED, ChangeKind.SLOT_UPDATED):
        if values or change.kind is ChangeKind.SLOT_UPDATED:
            fields = {**values}
            if "required_model_type" in fields:
                fields["required_model_type"] = MODEL_TYPE_TO_PB[
                    ModelType(fields["required_model_type"])
                ]
            message.slot.CopyFrom(pb.Slot(name=change.slot, **fields))
    else:
        return None
    return message


# The kinds whose before and after hold a model's or a slot's fields (Change.changed_fields).
_FIELD_KINDS = frozenset(
    {
        ChangeKind.MODEL_CREATED,
        ChangeKind.MODEL_UPDATED,
        ChangeKind.MODEL_DELETED,
        ChangeKind.SLOT_CREATED,
        ChangeKind.SLOT_UPDATED,
        ChangeKind.MODEL_RETIRED,
    }
)


def change_to_pb(change: Change) -> pb.Change:
    """A change as recorded (or, not yet committed, without revision and time)."""
    origin = change.origin
    message = pb.Change(
        revision=change.revision,
        actor=origin.actor,
        method=origin.method,
        request_id=origin.request_id,
        reason=origin.reason,
        kind=KIND_TO_PB[change.kind],
        scope=SCOPE_TO_PB[change.scope] if change.scope else pb.SCOPE_UNSPECIFIED,
        slot=change.slot,
        account_id=change.account_id,
        model_id=change.model_id,
        reverted_revision=change.reverted_revision,
    )
    if change.time is not None:
        message.time.CopyFrom(timestamp_to_pb(change.time))
    for side, values in (("before", change.before), ("after", change.after)):
        converted = _values_to_pb(change, values)
        if converted is not None:
            getattr(message, side).CopyFrom(converted)
    if change.writes_overrides and change.after:
        message.import_rows = change.after["rows"]
        message.import_accounts = change.after["accounts"]
    if change.kind in _FIELD_KINDS and change.changed_fields:
        message.changed_fields.paths.extend(change.changed_fields)
    return message


def feed_part_to_pb(part: FeedPart) -> api.WatchChangesResponse:
    response = api.WatchChangesResponse(
        changes=[change_to_pb(c) for c in part.changes],
        revision=part.revision,
        overrides=[
            pb.OverrideChange(
                revision=o.revision,
                account_id=o.account_id,
                slot=o.slot,
                model_id=o.model_id or 0,
            )
            for o in part.overrides
        ],
        more=part.more,
    )
    if part.catalog is not None:
        response.catalog.CopyFrom(
            pb.Catalog(
                models=[model_to_pb(m) for m in part.catalog.models],
                slots=[slot_setting_to_pb(view) for view in part.catalog.settings.slots],
                global_etag=part.catalog.settings.etag,
            )
        )
    return response


def estimate_to_pb(estimate: Estimate) -> api.CostEstimate:
    return api.CostEstimate(
        model=model_to_pb(estimate.cost.model),
        cost=amount_text(estimate.total),
        difference=amount_text(estimate.difference),
        current=estimate.current,
        missing_prices=list(estimate.cost.missing),
    )
