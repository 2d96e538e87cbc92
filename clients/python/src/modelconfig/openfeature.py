"""ModelConfigProvider: modelconfig's slots as OpenFeature flags (`pip install
modelconfig-client[openfeature]`), answered in-process by a LocalResolver.

The flag key is the slot (`openai_model`), the targeting key the account id. A string flag's
value is the model's `model_name`; an object flag's value is the model's fields. The reason
says which layer gave the model: TARGETING_MATCH for the account's override, STATIC for the
global setting, DEFAULT for the slot's default, STALE for any while the daemon is out of
reach; the variant is that layer (`account`, `global`, `default`) and the flag metadata names
the model id, its provider and the revision answered from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from ._errors import ModelConfigError
from ._local import ERROR, READY, STALE, LocalResolver
from .v1 import resources_pb2 as pb

_REASONS = {
    pb.SOURCE_ACCOUNT: Reason.TARGETING_MATCH,
    pb.SOURCE_GLOBAL: Reason.STATIC,
    pb.SOURCE_DEFAULT: Reason.DEFAULT,
}
_VARIANTS = {pb.SOURCE_ACCOUNT: "account", pb.SOURCE_GLOBAL: "global", pb.SOURCE_DEFAULT: "default"}


class ModelConfigProvider(AbstractProvider):
    """OpenFeature provider over a LocalResolver; `resolver_options` are LocalResolver's
    keyword arguments (token, accounts, TLS files, backoff, grace, ...)."""

    def __init__(self, target: str = "127.0.0.1:50051", **resolver_options: Any) -> None:
        super().__init__()
        self._target = target
        self._options = resolver_options
        self._resolver: LocalResolver | None = None
        self._ready = False

    def get_metadata(self) -> Metadata:
        return Metadata(name="modelconfig")

    @property
    def resolver(self) -> LocalResolver | None:
        return self._resolver

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Load the catalog (and accounts) and follow the daemon; raises if it cannot."""
        self._resolver = LocalResolver(
            self._target,
            on_change=self._changed,
            on_status=self._status,
            **self._options,
        )
        self._ready = True

    def shutdown(self) -> None:
        if self._resolver is not None:
            self._resolver.close()
            self._resolver = None
        self._ready = False

    # -- events --------------------------------------------------------------------------------

    def _changed(self, revision: int, slots: set[str]) -> None:
        if self._ready:
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=sorted(slots), metadata={"revision": revision})
            )

    def _status(self, status: str) -> None:
        if not self._ready:
            return
        if status == STALE:
            self.emit_provider_stale(ProviderEventDetails(message="the daemon is out of reach"))
        elif status == ERROR:
            self.emit_provider_error(
                ProviderEventDetails(
                    message="the daemon has been out of reach for longer than the grace period",
                    error_code=ErrorCode.GENERAL,
                )
            )
        elif status == READY:
            self.emit_provider_ready(ProviderEventDetails(message="following the daemon again"))

    # -- evaluation ----------------------------------------------------------------------------

    def _resolved(self, flag_key: str, context: EvaluationContext | None) -> pb.ResolvedSlot:
        resolver = self._resolver
        if resolver is None:
            raise _Failure(ErrorCode.PROVIDER_NOT_READY, "the provider is not initialized")
        if flag_key not in resolver.slots:
            raise _Failure(ErrorCode.FLAG_NOT_FOUND, f"no slot named {flag_key!r}")
        account_id = context.targeting_key if context is not None else None
        try:
            if not account_id:
                return resolver.resolve_global(flag_key)
            return resolver.resolve(account_id, (flag_key,)).slots[0]
        except ModelConfigError as exc:
            bad_account = "ACCOUNT_ID" in exc.reason  # a malformed targeting key
            code = ErrorCode.INVALID_CONTEXT if bad_account else ErrorCode.GENERAL
            raise _Failure(code, str(exc)) from exc

    def _details(self, flag_key: str, default: Any, context, value_of) -> FlagResolutionDetails:
        try:
            resolved = self._resolved(flag_key, context)
        except _Failure as failure:
            return FlagResolutionDetails(
                value=default,
                error_code=failure.code,
                error_message=failure.message,
                reason=Reason.ERROR,
            )
        resolver = self._resolver
        assert resolver is not None
        stale = resolver.status != READY
        return FlagResolutionDetails(
            value=value_of(resolved.model),
            reason=Reason.STALE if stale else _REASONS[resolved.source],
            variant=_VARIANTS[resolved.source],
            flag_metadata={
                "model_id": resolved.model.id,
                "provider": resolved.model.provider,
                "revision": resolver.revision,
            },
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._details(flag_key, default_value, evaluation_context, lambda m: m.model_name)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._details(flag_key, default_value, evaluation_context, _fields)

    def _mismatch(self, default: Any) -> FlagResolutionDetails:
        return FlagResolutionDetails(
            value=default,
            error_code=ErrorCode.TYPE_MISMATCH,
            error_message="a slot's flag is a string (the model's name) or an object (its fields)",
            reason=Reason.ERROR,
        )

    def resolve_boolean_details(self, flag_key, default_value, evaluation_context=None):
        return self._mismatch(default_value)

    def resolve_integer_details(self, flag_key, default_value, evaluation_context=None):
        return self._mismatch(default_value)

    def resolve_float_details(self, flag_key, default_value, evaluation_context=None):
        return self._mismatch(default_value)


def _fields(model: pb.Model) -> dict[str, Any]:
    """The model's fields under their proto names (prices stay exact decimal strings)."""
    return json_format.MessageToDict(
        model, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class _Failure(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
