"""ModelConfigClient: a thin, typed wrapper over the generated stub."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from ._errors import typed_errors
from .v1 import model_config_service_pb2 as api
from .v1 import model_config_service_pb2_grpc as api_grpc
from .v1 import resources_pb2 as pb

_DEFAULT = object()  # stands for the client's own timeout (None means no deadline)


# Reads that change nothing are retried by gRPC itself on UNAVAILABLE (a daemon restarting, a
# replica draining), with exponential backoff; writes never are: a write whose answer was lost
# may have committed, and the caller decides (etags make a retry safe).
_SAFE_READS = (
    "ListModels",
    "GetModel",
    "GetGlobalSettings",
    "ResolveForAccount",
    "ResolveForAccounts",
    "GetModelUsage",
    "ListSlots",
    "ListChanges",
    "EstimateCost",
    "ListAccounts",
)
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": "modelconfig.v1.ModelConfigService", "method": m}
                    for m in _SAFE_READS
                ],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class ModelConfigClient:
    """Calls the modelconfig daemon; failed calls raise `modelconfig.ModelConfigError` subclasses.

    Every write takes `reason` (kept in the audit trail as the change's reason) and
    `request_id` (kept with it too; the daemon generates one when none is given).

    `token` is sent as `authorization: Bearer <token>` with every call. TLS is used when
    `root_certificates` (PEM of the CA that signed the daemon's certificate) is given, and
    mutual TLS when `certificate_chain` and `private_key` (PEM) are given too.

    >>> with ModelConfigClient("127.0.0.1:50051") as client:
    ...     client.resolve_for_account("acme").slots[0].model.model_name
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        channel: grpc.Channel | None = None,
        timeout: float | None = 10.0,
        token: str | None = None,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
    ) -> None:
        self._owns_channel = channel is None
        if channel is None:
            options = [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1)]
            if root_certificates or certificate_chain:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates, private_key, certificate_chain
                )
                channel = grpc.secure_channel(target, credentials, options=options)
            else:
                channel = grpc.insecure_channel(target, options=options)
        self._channel = channel
        self._stub = api_grpc.ModelConfigServiceStub(self._channel)
        self._timeout = timeout
        self._auth = (("authorization", f"Bearer {token}"),) if token else ()

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> ModelConfigClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method,
        request,
        *,
        reason: str = "",
        request_id: str = "",
        timeout: object = _DEFAULT,
    ):
        metadata = [
            *self._auth,
            *(
                (key, value)
                for key, value in (("x-change-reason", reason), ("x-request-id", request_id))
                if value
            ),
        ]
        deadline = self._timeout if timeout is _DEFAULT else timeout
        with typed_errors():
            return method(request, timeout=deadline, metadata=metadata or None)

    def invoke(
        self,
        method: str,
        request: object,
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: object = _DEFAULT,
    ) -> Any:
        """Any RPC by its name in the proto (`"SetModel"`), with this client's credentials,
        deadline and typed errors: the response, or for a server stream an iterator of them
        (closing it cancels the call). A client stream takes an iterable of requests."""
        rpc = getattr(self._stub, method)
        headers = [*self._auth, *metadata]
        deadline = self._timeout if timeout is _DEFAULT else timeout
        if api.DESCRIPTOR.services_by_name["ModelConfigService"].methods_by_name[
            method
        ].server_streaming:
            return self._stream(rpc(request, timeout=deadline, metadata=headers or None))
        with typed_errors():
            return rpc(request, timeout=deadline, metadata=headers or None)

    @staticmethod
    def _stream(call) -> Iterator[Any]:
        try:
            with typed_errors():
                yield from call
        finally:
            call.cancel()

    # -- catalog -------------------------------------------------------------------------------

    def list_models(
        self,
        *,
        provider: str = "",
        model_type: pb.ModelType.ValueType = pb.MODEL_TYPE_UNSPECIFIED,
        active_only: bool = False,
        page_size: int = 0,
        page_token: str = "",
        deprecation: pb.DeprecationFilter.ValueType = pb.DEPRECATION_FILTER_UNSPECIFIED,
    ) -> api.ListModelsResponse:
        return self._call(
            self._stub.ListModels,
            api.ListModelsRequest(
                provider=provider,
                model_type=model_type,
                active_only=active_only,
                page_size=page_size,
                page_token=page_token,
                deprecation=deprecation,
            ),
        )

    def iter_models(self, **filters) -> Iterator[pb.Model]:
        """Every model matching the filters, following page tokens."""
        token = ""
        while True:
            page = self.list_models(page_token=token, **filters)
            yield from page.models
            token = page.next_page_token
            if not token:
                return

    def get_model(self, ref: int | str) -> api.GetModelResponse:
        """A model by id (int) or by name or alias (str)."""
        request = (
            api.GetModelRequest(model_id=ref)
            if isinstance(ref, int)
            else api.GetModelRequest(model_name=ref)
        )
        return self._call(self._stub.GetModel, request)

    def create_model(
        self, model: pb.Model, *, reason: str = "", request_id: str = ""
    ) -> api.CreateModelResponse:
        return self._call(
            self._stub.CreateModel,
            api.CreateModelRequest(model=model),
            reason=reason,
            request_id=request_id,
        )

    def update_model(
        self,
        model: pb.Model,
        update_mask: Sequence[str] = (),
        *,
        reason: str = "",
        request_id: str = "",
    ) -> api.UpdateModelResponse:
        request = api.UpdateModelRequest(model=model)
        if update_mask:
            request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(update_mask)))
        return self._call(self._stub.UpdateModel, request, reason=reason, request_id=request_id)

    def delete_model(
        self, model_id: int, *, reason: str = "", request_id: str = ""
    ) -> api.DeleteModelResponse:
        """Delete a model nothing uses."""
        return self._call(
            self._stub.DeleteModel,
            api.DeleteModelRequest(model_id=model_id),
            reason=reason,
            request_id=request_id,
        )

    def get_model_usage(
        self, model_id: int, *, page_size: int = 0, page_token: str = ""
    ) -> api.GetModelUsageResponse:
        """What uses a model; the accounts one page at a time (see iter_model_accounts)."""
        return self._call(
            self._stub.GetModelUsage,
            api.GetModelUsageRequest(
                model_id=model_id, page_size=page_size, page_token=page_token
            ),
        )

    def iter_model_accounts(self, model_id: int, *, page_size: int = 0) -> Iterator[str]:
        """Every account whose overrides use the model, in id order, following page tokens."""
        token = ""
        while True:
            page = self.get_model_usage(model_id, page_size=page_size, page_token=token)
            yield from page.account_ids
            token = page.next_page_token
            if not token:
                return

    def retire_model(
        self,
        model_id: int,
        successor_id: int,
        *,
        validate_only: bool = False,
        reason: str = "",
        request_id: str = "",
    ) -> api.RetireModelResponse:
        """Move every setting that selects the model to its successor and deactivate it, in one
        change (revertible with revert_change)."""
        return self._call(
            self._stub.RetireModel,
            api.RetireModelRequest(
                model_id=model_id, successor_id=successor_id, validate_only=validate_only
            ),
            reason=reason,
            request_id=request_id,
        )

    def list_accounts(
        self, *, slot: str = "", model_id: int = 0, page_size: int = 0, page_token: str = ""
    ) -> api.ListAccountsResponse:
        """One page of the accounts with overrides (of `slot`, selecting `model_id`, if given)."""
        return self._call(
            self._stub.ListAccounts,
            api.ListAccountsRequest(
                slot=slot, model_id=model_id, page_size=page_size, page_token=page_token
            ),
        )

    def iter_accounts(self, **filters) -> Iterator[api.AccountOverrides]:
        """Every account with overrides matching the filters, following page tokens."""
        token = ""
        while True:
            page = self.list_accounts(page_token=token, **filters)
            yield from page.accounts
            token = page.next_page_token
            if not token:
                return

    # -- slots ---------------------------------------------------------------------------------

    def list_slots(self) -> api.ListSlotsResponse:
        return self._call(self._stub.ListSlots, api.ListSlotsRequest())

    def create_slot(
        self, slot: pb.Slot, *, reason: str = "", request_id: str = ""
    ) -> api.CreateSlotResponse:
        return self._call(
            self._stub.CreateSlot,
            api.CreateSlotRequest(slot=slot),
            reason=reason,
            request_id=request_id,
        )

    def update_slot(
        self,
        slot: pb.Slot,
        update_mask: Sequence[str] = (),
        *,
        reason: str = "",
        request_id: str = "",
    ) -> api.UpdateSlotResponse:
        request = api.UpdateSlotRequest(slot=slot)
        if update_mask:
            request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(update_mask)))
        return self._call(self._stub.UpdateSlot, request, reason=reason, request_id=request_id)

    # -- settings ------------------------------------------------------------------------------

    def get_global_settings(self) -> api.GetGlobalSettingsResponse:
        return self._call(self._stub.GetGlobalSettings, api.GetGlobalSettingsRequest())

    def set_model(
        self,
        slot: str,
        model: int | str,
        *,
        account_id: str = "",
        scope: pb.Scope.ValueType = pb.SCOPE_UNSPECIFIED,
        etag: str = "",
        validate_only: bool = False,
        reason: str = "",
        request_id: str = "",
    ) -> api.SetModelResponse:
        """Select a model (id, name or alias) for a slot: for `account_id`, or, with
        `scope=SCOPE_GLOBAL` and no account, globally (see set_global_model). An empty account
        without a scope is refused (SCOPE_REQUIRED), never taken as global."""
        request = api.SetModelRequest(
            slot=slot, account_id=account_id, scope=scope, etag=etag, validate_only=validate_only
        )
        if isinstance(model, int):
            request.model_id = model
        else:
            request.model_name = model
        return self._call(self._stub.SetModel, request, reason=reason, request_id=request_id)

    def set_global_model(
        self,
        slot: str,
        model: int | str,
        *,
        etag: str = "",
        validate_only: bool = False,
        reason: str = "",
        request_id: str = "",
    ) -> api.SetModelResponse:
        """Select a model for a slot's global setting, which every account without an override
        uses."""
        return self.set_model(
            slot,
            model,
            scope=pb.SCOPE_GLOBAL,
            etag=etag,
            validate_only=validate_only,
            reason=reason,
            request_id=request_id,
        )

    def clear_account_model(
        self, account_id: str, slot: str, *, etag: str = "", reason: str = "", request_id: str = ""
    ) -> api.ClearAccountModelResponse:
        return self._call(
            self._stub.ClearAccountModel,
            api.ClearAccountModelRequest(account_id=account_id, slot=slot, etag=etag),
            reason=reason,
            request_id=request_id,
        )

    def clear_global_model(
        self, slot: str, *, etag: str = "", reason: str = "", request_id: str = ""
    ) -> api.ClearGlobalModelResponse:
        """Remove a slot's global setting: accounts without an override fall back to its default."""
        return self._call(
            self._stub.ClearGlobalModel,
            api.ClearGlobalModelRequest(slot=slot, etag=etag),
            reason=reason,
            request_id=request_id,
        )

    def resolve_for_account(
        self, account_id: str, slots: Sequence[str] = ()
    ) -> api.ResolveForAccountResponse:
        return self._call(
            self._stub.ResolveForAccount,
            api.ResolveForAccountRequest(account_id=account_id, slots=list(slots)),
        )

    def resolve_for_accounts(
        self, account_ids: Sequence[str], slots: Sequence[str] = ()
    ) -> api.ResolveForAccountsResponse:
        """Resolve up to 1000 accounts in one call; a bad id gets a per-account error."""
        return self._call(
            self._stub.ResolveForAccounts,
            api.ResolveForAccountsRequest(account_ids=list(account_ids), slots=list(slots)),
        )

    def import_overrides(
        self,
        records: Iterable[api.OverrideRecord],
        *,
        validate_only: bool = False,
        chunk_size: int = 5000,
        timeout: float | None = None,
        reason: str = "",
        request_id: str = "",
    ) -> api.ImportOverridesResponse:
        """Set many overrides in one transaction; nothing is applied if any row is bad.

        Records stream in chunks; there is no deadline unless `timeout` is given, since a
        million rows take a while.
        """

        def chunks() -> Iterator[api.ImportOverridesRequest]:
            batch: list[api.OverrideRecord] = []
            first = True
            for record in records:
                batch.append(record)
                if len(batch) == chunk_size:
                    yield api.ImportOverridesRequest(rows=batch, validate_only=validate_only)
                    batch, first = [], False
            if batch or first:
                yield api.ImportOverridesRequest(rows=batch, validate_only=validate_only)

        return self._call(
            self._stub.ImportOverrides,
            chunks(),
            reason=reason,
            request_id=request_id,
            timeout=timeout,
        )

    # -- whole configurations ------------------------------------------------------------------

    def export_configuration(
        self, *, timeout: float | None = None
    ) -> Iterator[api.ExportConfigurationResponse]:
        """The whole configuration as of one revision: the first response holds the catalog,
        slots and global settings, the rest every account override. No deadline unless
        `timeout` is given: a million overrides take a while."""
        metadata = tuple(self._auth) or None
        with typed_errors():
            responses = self._stub.ExportConfiguration(
                api.ExportConfigurationRequest(), timeout=timeout, metadata=metadata
            )
            yield from responses

    def apply_configuration(
        self,
        configuration: api.Configuration,
        overrides: Iterable[api.OverrideRecord] | None = None,
        *,
        validate_only: bool = False,
        expected_revision: int = 0,
        chunk_size: int = 5000,
        timeout: float | None = None,
        reason: str = "",
        request_id: str = "",
    ) -> api.ApplyConfigurationResponse:
        """Make the daemon's configuration match, in one change. With `overrides` (even empty)
        they become every account override the daemon holds; None leaves overrides as they are.
        `expected_revision`: apply only if the daemon is still there (else ABORTED).
        """

        def messages() -> Iterator[api.ApplyConfigurationRequest]:
            yield api.ApplyConfigurationRequest(
                configuration=configuration,
                replace_overrides=overrides is not None,
                validate_only=validate_only,
                expected_revision=expected_revision,
            )
            batch: list[api.OverrideRecord] = []
            for record in overrides or ():
                batch.append(record)
                if len(batch) == chunk_size:
                    yield api.ApplyConfigurationRequest(overrides=batch)
                    batch = []
            if batch:
                yield api.ApplyConfigurationRequest(overrides=batch)

        return self._call(
            self._stub.ApplyConfiguration,
            messages(),
            reason=reason,
            request_id=request_id,
            timeout=timeout,
        )

    # -- the audit trail -----------------------------------------------------------------------

    def estimate_cost(
        self,
        slot: str,
        *,
        account_id: str = "",
        scope: pb.Scope.ValueType = pb.SCOPE_UNSPECIFIED,
        input_tokens: int = 0,
        cached_input_tokens: int = 0,
        output_tokens: int = 0,
        images: int = 0,
        weight_by_accounts: bool = False,
        image_size: str = "",
        image_quality: str = "",
    ) -> api.EstimateCostResponse:
        """What a volume per period costs under the slot's model and every model it accepts,
        cheapest first, as exact decimal strings; images at `image_size` and `image_quality`
        when given (both), from the models' prices per size and quality."""
        return self._call(
            self._stub.EstimateCost,
            api.EstimateCostRequest(
                slot=slot,
                account_id=account_id,
                scope=scope,
                input_tokens=input_tokens,
                cached_input_tokens=cached_input_tokens,
                output_tokens=output_tokens,
                images=images,
                weight_by_accounts=weight_by_accounts,
                image_size=image_size,
                image_quality=image_quality,
            ),
        )

    def list_changes(self, **filters) -> api.ListChangesResponse:
        """One page of recorded changes, newest first; `filters` are ListChangesRequest fields
        (model_id, slot, account_id, actor, start_time, end_time, min_revision, max_revision,
        page_size, page_token)."""
        return self._call(self._stub.ListChanges, api.ListChangesRequest(**filters))

    def iter_changes(self, **filters) -> Iterator[pb.Change]:
        """Every recorded change matching the filters, newest first, following page tokens."""
        token = ""
        while True:
            page = self.list_changes(page_token=token, **filters)
            yield from page.changes
            token = page.next_page_token
            if not token:
                return

    def revert_change(
        self,
        revision: int,
        *,
        force: bool = False,
        validate_only: bool = False,
        timeout: float | None = None,
        reason: str = "",
        request_id: str = "",
    ) -> api.RevertChangeResponse:
        """Record a change restoring what the change at `revision` replaced. No deadline unless
        `timeout` is given: reverting a large import takes a while."""
        return self._call(
            self._stub.RevertChange,
            api.RevertChangeRequest(revision=revision, force=force, validate_only=validate_only),
            reason=reason,
            request_id=request_id,
            timeout=timeout,
        )
