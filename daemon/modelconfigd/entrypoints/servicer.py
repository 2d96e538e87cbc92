"""The ModelConfigService servicer: protobuf in, a service call, protobuf out; nothing else."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from modelconfig.v1 import model_config_service_pb2 as api

from ..service_layer.services import ImportRow, ModelConfigServices, ModelRef
from .convert import (
    model_fields_from_pb,
    model_to_pb,
    model_type_from_pb,
    slot_setting_to_pb,
    update_changes,
)
from .resolve_wire import encode_batch, encode_resolution


def _ref(request: api.GetModelRequest | api.SetModelRequest | api.OverrideRecord) -> ModelRef:
    which = request.WhichOneof("model_ref")
    if which == "model_id":
        return ModelRef(model_id=request.model_id)
    if which == "model_name":
        return ModelRef(model_name=request.model_name)
    return ModelRef()


class ModelConfigServicer:
    """One method per RPC, named as in the proto; each takes a decoded request."""

    def __init__(self, services: ModelConfigServices) -> None:
        self._services = services

    def ListModels(self, request: api.ListModelsRequest, context) -> api.ListModelsResponse:
        page = self._services.list_models(
            provider=request.provider,
            model_type=model_type_from_pb(request.model_type, "model_type"),
            active_only=request.active_only,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return api.ListModelsResponse(
            models=[model_to_pb(m) for m in page.models],
            next_page_token=page.next_page_token,
            revision=page.revision,
        )

    def GetModel(self, request: api.GetModelRequest, context) -> api.GetModelResponse:
        return api.GetModelResponse(model=model_to_pb(self._services.get_model(_ref(request))))

    def CreateModel(self, request: api.CreateModelRequest, context) -> api.CreateModelResponse:
        model, revision = self._services.create_model(model_fields_from_pb(request.model))
        return api.CreateModelResponse(model=model_to_pb(model), revision=revision)

    def UpdateModel(self, request: api.UpdateModelRequest, context) -> api.UpdateModelResponse:
        changes = update_changes(request.model, list(request.update_mask.paths))
        model, revision = self._services.update_model(request.model.id, changes)
        return api.UpdateModelResponse(model=model_to_pb(model), revision=revision)

    def DeleteModel(self, request: api.DeleteModelRequest, context) -> api.DeleteModelResponse:
        return api.DeleteModelResponse(revision=self._services.delete_model(request.model_id))

    def GetGlobalSettings(
        self, request: api.GetGlobalSettingsRequest, context
    ) -> api.GetGlobalSettingsResponse:
        settings = self._services.global_settings()
        return api.GetGlobalSettingsResponse(
            slots=[slot_setting_to_pb(view) for view in settings.slots],
            etag=settings.etag,
            revision=settings.revision,
        )

    def SetModel(self, request: api.SetModelRequest, context) -> api.SetModelResponse:
        result = self._services.set_model(
            slot_name=request.slot,
            ref=_ref(request),
            account_id=request.account_id,
            etag=request.etag,
            validate_only=request.validate_only,
        )
        return api.SetModelResponse(
            setting=slot_setting_to_pb(result.setting), revision=result.revision, etag=result.etag
        )

    def ClearAccountModel(
        self, request: api.ClearAccountModelRequest, context
    ) -> api.ClearAccountModelResponse:
        revision, etag = self._services.clear_account_model(
            request.account_id, request.slot, request.etag
        )
        return api.ClearAccountModelResponse(revision=revision, etag=etag)

    def ResolveForAccount(self, request: api.ResolveForAccountRequest, context) -> bytes:
        """Answers serialized bytes (a ResolveForAccountResponse) built from cached pieces."""
        return encode_resolution(self._services.resolve(request.account_id, request.slots))

    def ResolveForAccounts(self, request: api.ResolveForAccountsRequest, context) -> bytes:
        """Answers serialized bytes (a ResolveForAccountsResponse) built from cached pieces."""
        return encode_batch(self._services.resolve_many(request.account_ids, request.slots))

    def ImportOverrides(
        self, requests: Iterator[api.ImportOverridesRequest], context
    ) -> api.ImportOverridesResponse:
        first = next(requests, None)
        chunks = itertools.chain([first] if first else [], requests)
        rows = (
            ImportRow(r.line, r.account_id, r.slot, _ref(r)) for chunk in chunks for r in chunk.rows
        )
        result = self._services.import_overrides(rows, first is not None and first.validate_only)
        return api.ImportOverridesResponse(
            rows=result.rows, accounts=result.accounts, revision=result.revision
        )

    def GetModelUsage(
        self, request: api.GetModelUsageRequest, context
    ) -> api.GetModelUsageResponse:
        usage = self._services.model_usage(request.model_id)
        return api.GetModelUsageResponse(
            global_slots=usage.global_slots,
            default_slots=usage.default_slots,
            account_override_count=usage.account_override_count,
            account_ids=usage.account_ids,
            revision=usage.revision,
        )
