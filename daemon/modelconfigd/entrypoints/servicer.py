"""The ModelConfigService servicer: protobuf in, a service call, protobuf out; nothing else."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

from ..domain.access import Principal
from ..domain.changes import ChangeFilter
from ..domain.costs import Volume
from ..domain.errors import InvalidArgument
from ..domain.model import Slot
from ..domain.state import ResolvedView
from ..service_layer.change_feed import ChangeFeed
from ..service_layer.services import ImportRow, ModelConfigServices, ModelRef
from .convert import (
    account_overrides_to_pb,
    apply_outcome_to_pb,
    change_to_pb,
    configuration_to_pb,
    deprecation_from_pb,
    estimate_to_pb,
    feed_part_to_pb,
    model_fields_from_pb,
    model_to_pb,
    model_type_from_pb,
    model_update,
    scope_from_pb,
    slot_fields_from_pb,
    slot_setting_to_pb,
    slot_to_pb,
    slot_update,
    timestamp_from_pb,
)
from .request_origin import request_origin
from .resolve_wire import encode_batch, encode_resolution
from .wire_cache import WireCache


def _ref(request: api.GetModelRequest | api.SetModelRequest | api.OverrideRecord) -> ModelRef:
    which = request.WhichOneof("model_ref")
    if which == "model_id":
        return ModelRef(model_id=request.model_id)
    if which == "model_name":
        return ModelRef(model_name=request.model_name)
    return ModelRef()


class ModelConfigServicer:
    """One method per RPC, named as in the proto; each takes a decoded request."""

    def __init__(
        self,
        services: ModelConfigServices,
        wire: WireCache,
        feed: ChangeFeed,
        on_resolved: Callable[[ResolvedView], None] | None = None,
    ) -> None:
        self._services = services
        self._wire = wire
        self._feed = feed
        self._on_resolved = on_resolved

    # -- catalog -------------------------------------------------------------------------------

    def ListModels(
        self, request: api.ListModelsRequest, context, caller: Principal
    ) -> api.ListModelsResponse:
        page = self._services.list_models(
            provider=request.provider,
            model_type=model_type_from_pb(request.model_type, "model_type"),
            active_only=request.active_only,
            page_size=request.page_size,
            page_token=request.page_token,
            deprecation=deprecation_from_pb(request.deprecation),
        )
        return api.ListModelsResponse(
            models=[model_to_pb(m) for m in page.models],
            next_page_token=page.next_page_token,
            revision=page.revision,
        )

    def GetModel(
        self, request: api.GetModelRequest, context, caller: Principal
    ) -> api.GetModelResponse:
        return api.GetModelResponse(model=model_to_pb(self._services.get_model(_ref(request))))

    def CreateModel(
        self, request: api.CreateModelRequest, context, caller: Principal
    ) -> api.CreateModelResponse:
        origin = request_origin(context, caller, "CreateModel")
        model, revision = self._services.create_model(model_fields_from_pb(request.model), origin)
        return api.CreateModelResponse(model=model_to_pb(model), revision=revision)

    def UpdateModel(
        self, request: api.UpdateModelRequest, context, caller: Principal
    ) -> api.UpdateModelResponse:
        origin = request_origin(context, caller, "UpdateModel")
        fields = model_update(request.model, list(request.update_mask.paths))
        model, revision = self._services.update_model(request.model.id, fields, origin)
        return api.UpdateModelResponse(model=model_to_pb(model), revision=revision)

    def DeleteModel(
        self, request: api.DeleteModelRequest, context, caller: Principal
    ) -> api.DeleteModelResponse:
        origin = request_origin(context, caller, "DeleteModel")
        return api.DeleteModelResponse(
            revision=self._services.delete_model(request.model_id, origin)
        )

    def GetModelUsage(
        self, request: api.GetModelUsageRequest, context, caller: Principal
    ) -> api.GetModelUsageResponse:
        page = self._services.model_usage(request.model_id, request.page_size, request.page_token)
        usage = page.usage
        return api.GetModelUsageResponse(
            global_slots=usage.global_slots,
            default_slots=usage.default_slots,
            account_override_count=usage.account_override_count,
            account_ids=usage.account_ids,
            revision=page.revision,
            next_page_token=page.next_page_token,
            successor_of=usage.successor_of,
        )

    def RetireModel(
        self, request: api.RetireModelRequest, context, caller: Principal
    ) -> api.RetireModelResponse:
        origin = request_origin(context, caller, "RetireModel")
        retired = self._services.retire_model(
            request.model_id, request.successor_id, request.validate_only, origin
        )
        retirement = retired.retirement
        moved = retirement.moved
        return api.RetireModelResponse(
            model=model_to_pb(retirement.model),
            successor=model_to_pb(retirement.successor),
            global_slots=moved.global_slots,
            default_slots=moved.default_slots,
            account_overrides=moved.override_rows,
            accounts=moved.override_accounts,
            revision=retired.revision,
        )

    def ListAccounts(
        self, request: api.ListAccountsRequest, context, caller: Principal
    ) -> api.ListAccountsResponse:
        page = self._services.list_accounts(
            request.slot, request.model_id, request.page_size, request.page_token
        )
        return api.ListAccountsResponse(
            accounts=[account_overrides_to_pb(a) for a in page.accounts],
            next_page_token=page.next_page_token,
            revision=page.revision,
        )

    # -- slots ---------------------------------------------------------------------------------

    def ListSlots(
        self, request: api.ListSlotsRequest, context, caller: Principal
    ) -> api.ListSlotsResponse:
        slots, revision = self._services.list_slots()
        return api.ListSlotsResponse(
            slots=[slot_to_pb(slot, default) for slot, default in slots], revision=revision
        )

    def CreateSlot(
        self, request: api.CreateSlotRequest, context, caller: Principal
    ) -> api.CreateSlotResponse:
        origin = request_origin(context, caller, "CreateSlot")
        slot, revision = self._services.create_slot(slot_fields_from_pb(request.slot), origin)
        return api.CreateSlotResponse(slot=self._slot_with_default(slot), revision=revision)

    def UpdateSlot(
        self, request: api.UpdateSlotRequest, context, caller: Principal
    ) -> api.UpdateSlotResponse:
        origin = request_origin(context, caller, "UpdateSlot")
        fields = slot_update(request.slot, list(request.update_mask.paths))
        slot, revision = self._services.update_slot(request.slot.name, fields, origin)
        return api.UpdateSlotResponse(slot=self._slot_with_default(slot), revision=revision)

    def _slot_with_default(self, slot: Slot) -> pb.Slot:
        return slot_to_pb(slot, self._services.state.catalog.models.get(slot.default_model_id))

    # -- settings ------------------------------------------------------------------------------

    def GetGlobalSettings(
        self, request: api.GetGlobalSettingsRequest, context, caller: Principal
    ) -> api.GetGlobalSettingsResponse:
        settings = self._services.global_settings()
        return api.GetGlobalSettingsResponse(
            slots=[slot_setting_to_pb(view) for view in settings.slots],
            etag=settings.etag,
            revision=settings.revision,
        )

    def SetModel(
        self, request: api.SetModelRequest, context, caller: Principal
    ) -> api.SetModelResponse:
        scope = scope_from_pb(request.scope)
        origin = request_origin(context, caller, "SetModel")
        result = self._services.set_model(
            slot_name=request.slot,
            ref=_ref(request),
            account_id=request.account_id,
            etag=request.etag,
            validate_only=request.validate_only,
            scope=scope,
            origin=origin,
        )
        return api.SetModelResponse(
            setting=slot_setting_to_pb(result.setting), revision=result.revision, etag=result.etag
        )

    def ClearAccountModel(
        self, request: api.ClearAccountModelRequest, context, caller: Principal
    ) -> api.ClearAccountModelResponse:
        origin = request_origin(context, caller, "ClearAccountModel")
        revision, etag = self._services.clear_account_model(
            request.account_id, request.slot, request.etag, origin
        )
        return api.ClearAccountModelResponse(revision=revision, etag=etag)

    def ClearGlobalModel(
        self, request: api.ClearGlobalModelRequest, context, caller: Principal
    ) -> api.ClearGlobalModelResponse:
        origin = request_origin(context, caller, "ClearGlobalModel")
        revision, etag = self._services.clear_global_model(request.slot, request.etag, origin)
        return api.ClearGlobalModelResponse(revision=revision, etag=etag)

    def ResolveForAccount(
        self, request: api.ResolveForAccountRequest, context, caller: Principal
    ) -> tuple[bytes, ResolvedView]:
        """Answers serialized bytes (a ResolveForAccountResponse) built from cached pieces, and
        the view they show (the handler caches both and counts the view)."""
        resolution = self._services.resolve(request.account_id, request.slots)
        return encode_resolution(resolution, self._wire.of(resolution.state)), resolution.view

    def ResolveForAccounts(
        self, request: api.ResolveForAccountsRequest, context, caller: Principal
    ) -> bytes:
        """Answers serialized bytes (a ResolveForAccountsResponse) built from cached pieces."""
        batch = self._services.resolve_many(request.account_ids, request.slots)
        if self._on_resolved is not None:
            for _, outcome in batch.results:
                if isinstance(outcome, ResolvedView):
                    self._on_resolved(outcome)
        return encode_batch(batch, self._wire.of(batch.state))

    def ImportOverrides(
        self, requests: Iterator[api.ImportOverridesRequest], context, caller: Principal
    ) -> api.ImportOverridesResponse:
        origin = request_origin(context, caller, "ImportOverrides")
        first = next(requests, None)
        chunks = itertools.chain([first] if first else [], requests)
        rows = (
            ImportRow(r.line, r.account_id, r.slot, _ref(r)) for chunk in chunks for r in chunk.rows
        )
        result = self._services.import_overrides(
            rows, first is not None and first.validate_only, origin
        )
        return api.ImportOverridesResponse(
            rows=result.rows,
            accounts=result.accounts,
            revision=result.revision,
            changed_rows=result.changed_rows,
        )

    # -- whole configurations ------------------------------------------------------------------

    EXPORT_PART = 10_000  # overrides per response

    def ExportConfiguration(
        self, request: api.ExportConfigurationRequest, context, caller: Principal
    ) -> Iterator[api.ExportConfigurationResponse]:
        export = self._services.export_configuration()
        yield api.ExportConfigurationResponse(
            configuration=configuration_to_pb(
                export.models, export.slots, export.global_settings
            ),
            revision=export.revision,
            override_count=export.override_count,
        )
        rows = iter(export.overrides)
        while part := list(itertools.islice(rows, self.EXPORT_PART)):
            yield api.ExportConfigurationResponse(
                revision=export.revision,
                overrides=[
                    api.OverrideRecord(account_id=a, slot=s, model_id=m) for a, s, m in part
                ],
            )

    def ApplyConfiguration(
        self, requests: Iterator[api.ApplyConfigurationRequest], context, caller: Principal
    ) -> api.ApplyConfigurationResponse:
        origin = request_origin(context, caller, "ApplyConfiguration")
        first = next(requests, None)
        if first is None or not first.HasField("configuration"):
            raise InvalidArgument.field(
                "configuration",
                "the first message must carry the configuration",
                reason="NO_CONFIGURATION",
            )
        config = first.configuration
        messages = itertools.chain([first], requests)
        records = (r for message in messages for r in message.overrides)
        rows = (
            ImportRow(r.line or n, r.account_id, r.slot, _ref(r))
            for n, r in enumerate(records, start=1)
        )
        if not first.replace_overrides:
            if first.overrides or next(requests, None) is not None:
                raise InvalidArgument.field(
                    "overrides",
                    "overrides were sent without replace_overrides: set it to make them every "
                    "override the daemon holds",
                    reason="OVERRIDES_NOT_REPLACED",
                )
            rows = None
        result = self._services.apply_configuration(
            [(m.id, model_fields_from_pb(m)) for m in config.models],
            [slot_fields_from_pb(s) for s in config.slots],
            [(g.slot, g.model_id) for g in config.global_settings],
            rows,
            first.validate_only,
            origin,
            first.expected_revision,
        )
        return apply_outcome_to_pb(result.outcome, result.revision)

    # -- the audit trail -----------------------------------------------------------------------

    def ListChanges(
        self, request: api.ListChangesRequest, context, caller: Principal
    ) -> api.ListChangesResponse:
        where = ChangeFilter(
            model_id=request.model_id,
            slot=request.slot,
            account_id=request.account_id,
            actor=request.actor,
            start_time=timestamp_from_pb(request, "start_time"),
            end_time=timestamp_from_pb(request, "end_time"),
            min_revision=request.min_revision,
            max_revision=request.max_revision,
        )
        page = self._services.list_changes(where, request.page_size, request.page_token)
        return api.ListChangesResponse(
            changes=[change_to_pb(c) for c in page.changes],
            next_page_token=page.next_page_token,
        )

    def RevertChange(
        self, request: api.RevertChangeRequest, context, caller: Principal
    ) -> api.RevertChangeResponse:
        origin = request_origin(context, caller, "RevertChange")
        result = self._services.revert_change(
            request.revision, request.force, request.validate_only, origin
        )
        response = api.RevertChangeResponse(revision=result.revision)
        if result.change is not None:
            response.change.CopyFrom(change_to_pb(result.change))
        return response

    # -- costs ---------------------------------------------------------------------------------

    def EstimateCost(
        self, request: api.EstimateCostRequest, context, caller: Principal
    ) -> api.EstimateCostResponse:
        answer = self._services.estimate_cost(
            request.slot,
            request.account_id,
            scope_from_pb(request.scope),
            Volume(
                input_tokens=request.input_tokens,
                cached_input_tokens=request.cached_input_tokens,
                output_tokens=request.output_tokens,
                images=request.images,
                image_size=request.image_size,
                image_quality=request.image_quality,
            ),
            request.weight_by_accounts,
        )
        return api.EstimateCostResponse(
            estimates=[estimate_to_pb(e) for e in answer.estimates],
            revision=answer.revision,
            accounts_following=answer.accounts_following,
            accounts_overriding=answer.accounts_overriding,
        )

    # -- the change feed -----------------------------------------------------------------------

    def WatchChanges(
        self, request: api.WatchChangesRequest, context, caller: Principal
    ) -> Iterator[api.WatchChangesResponse]:
        context.add_callback(self._feed.wake)  # a caller gone away stops its watch at once
        parts = self._feed.watch(request.start_revision, context.is_active, request.all_overrides)
        for part in parts:
            yield feed_part_to_pb(part)
