"""modelconfig.openfeature.ModelConfigProvider under the real OpenFeature SDK, against a live
daemon on SQLite and PostgreSQL: values, reasons, variants, metadata, errors and events."""

from __future__ import annotations

import itertools
import queue

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from modelconfig.openfeature import ModelConfigProvider
from modelconfig.v1 import resources_pb2 as pb

from .process_helpers import free_port

_domains = itertools.count()


class Events:
    """The provider events the SDK hands to a client's handlers."""

    def __init__(self, client) -> None:
        self.seen: queue.Queue[tuple[ProviderEvent, EventDetails]] = queue.Queue()
        for event in ProviderEvent:
            client.add_handler(event, lambda details, e=event: self.seen.put((e, details)))

    def next(self, kind: ProviderEvent, timeout: float = 10.0) -> EventDetails:
        while True:
            event, details = self.seen.get(timeout=timeout)
            if event is kind:
                return details


@pytest.fixture
def feature(daemon):
    """An OpenFeature client of its own domain, served by a ModelConfigProvider."""
    domain = f"modelconfig-{next(_domains)}"
    provider = ModelConfigProvider(daemon.address)
    api.set_provider_and_wait(provider, domain)
    client = api.get_client(domain)
    yield client, provider
    provider.shutdown()


def account(account_id: str) -> EvaluationContext:
    return EvaluationContext(targeting_key=account_id)


def test_a_global_setting_is_static_and_names_the_model(client, feature):
    features, _ = feature
    details = features.get_string_details("openai_model", "fallback", account("acme"))
    assert details.value == "gpt-4o-mini"
    assert (details.reason, details.variant) == (Reason.STATIC, "global")
    assert details.flag_metadata == {
        "model_id": 1,
        "provider": "openai",
        "revision": client.get_global_settings().revision,
    }


def test_an_account_override_is_a_targeting_match(client, feature):
    features, provider = feature
    revision = client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme").revision
    assert provider.resolver.wait_for_revision(revision, timeout=10)
    details = features.get_string_details("openai_model", "fallback", account("acme"))
    assert (details.value, details.reason, details.variant) == (
        "gpt-3.5-turbo",
        Reason.TARGETING_MATCH,
        "account",
    )
    other = features.get_string_details("openai_model", "fallback", account("globex"))
    assert other.value == "gpt-4o-mini"


def test_a_slot_without_a_global_setting_gives_its_default(client, feature):
    features, provider = feature
    revision = client.clear_global_model("openai_model").revision
    assert provider.resolver.wait_for_revision(revision, timeout=10)
    details = features.get_string_details("openai_model", "fallback", account("acme"))
    assert (details.reason, details.variant) == (Reason.DEFAULT, "default")
    assert details.value == client.get_global_settings().slots[0].default_model.model_name


def test_no_targeting_key_resolves_the_global_setting(client, feature):
    features, _ = feature
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    details = features.get_string_details("openai_model", "fallback")
    assert (details.value, details.reason) == ("gpt-4o-mini", Reason.STATIC)


def test_an_object_flag_is_the_models_fields(client, feature):
    features, _ = feature
    value = features.get_object_value("dalle_model", {}, account("acme"))
    model = client.get_model("dall-e-3").model
    assert value["id"] == str(model.id)  # int64 in protobuf's JSON mapping
    assert value["model_name"] == "dall-e-3"
    assert value["price_per_image"] == model.price_per_image
    assert value["model_type"] == pb.ModelType.Name(model.model_type)


def test_an_unknown_slot_is_flag_not_found(feature):
    features, _ = feature
    details = features.get_string_details("no_such_slot", "fallback", account("acme"))
    assert (details.value, details.error_code, details.reason) == (
        "fallback",
        ErrorCode.FLAG_NOT_FOUND,
        Reason.ERROR,
    )


def test_a_malformed_account_id_is_invalid_context(feature):
    features, _ = feature
    details = features.get_string_details("openai_model", "fallback", account("bad id"))
    assert (details.value, details.error_code) == ("fallback", ErrorCode.INVALID_CONTEXT)


def test_a_boolean_flag_is_a_type_mismatch(feature):
    features, _ = feature
    details = features.get_boolean_details("openai_model", False, account("acme"))
    assert details.error_code == ErrorCode.TYPE_MISMATCH


def test_a_change_is_announced_with_the_slots_it_touched(client, feature):
    features, _ = feature
    events = Events(features)
    revision = client.set_model("dalle_model", "dall-e-3", account_id="acme").revision
    details = events.next(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
    assert details.flags_changed == ["dalle_model"]
    assert details.metadata["revision"] == revision


def test_ready_then_stale_then_error_then_ready_as_the_daemon_goes_and_comes(daemons, tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    listen = f"127.0.0.1:{free_port()}"
    first = daemons.start(url, listen=listen)
    domain = f"modelconfig-{next(_domains)}"
    provider = ModelConfigProvider(listen, backoff_start=0.05, backoff_cap=0.2, grace=1.0)
    api.set_provider_and_wait(provider, domain)
    features = api.get_client(domain)
    events = Events(features)
    try:
        first.terminate()
        first.wait_exit()
        events.next(ProviderEvent.PROVIDER_STALE)
        stale = features.get_string_details("openai_model", "fallback", account("acme"))
        assert (stale.value, stale.reason) == ("gpt-4o-mini", Reason.STALE)
        assert events.next(ProviderEvent.PROVIDER_ERROR).error_code == ErrorCode.GENERAL
        daemons.start(url, listen=listen)
        events.next(ProviderEvent.PROVIDER_READY, timeout=15)
        again = features.get_string_details("openai_model", "fallback", account("acme"))
        assert again.reason == Reason.STATIC
    finally:
        provider.shutdown()
