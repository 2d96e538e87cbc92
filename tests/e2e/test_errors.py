"""Every refusal is a deliberate status with google.rpc details; hostile bytes do no harm."""

from __future__ import annotations

import re

import grpc
import pytest

from modelconfig import InvalidArgument, ModelConfigError, from_rpc_error
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

REFUSALS = {
    "unknown-slot": lambda c: c.set_global_model("nope", 1),
    "not-found": lambda c: c.get_model(999).model,
    "exists": lambda c: c.create_model(
        pb.Model(model_name="gpt-4o-mini", provider="openai", model_type=pb.MODEL_TYPE_TEXT)
    ).model,
    "stale-etag": lambda c: c.set_global_model("openai_model", 2, etag="g0"),
    "mismatch": lambda c: c.set_global_model("dalle_model", 1),
    "in-use": lambda c: c.delete_model(1).revision,
    "bad-page": lambda c: c.list_models(page_size=-3),
    "no-account": lambda c: c.resolve_for_account(""),
}
DELIBERATE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.FAILED_PRECONDITION,
}


@pytest.mark.parametrize("call", REFUSALS.values(), ids=REFUSALS.keys())
def test_refusals_carry_error_info(client, call):
    with pytest.raises(ModelConfigError) as err:
        call(client)
    assert err.value.code in DELIBERATE
    assert re.fullmatch(r"[A-Z][A-Z0-9_]+", err.value.reason)
    infos = [d for d in err.value.details if d.DESCRIPTOR.name == "ErrorInfo"]
    assert len(infos) == 1 and infos[0].domain == "modelconfig"
    assert err.value.message


# Byte strings no message can decode: an unterminated varint tag, a length past the end.
GARBAGE = {"unterminated-tag": b"\xff\xff\xff\xff", "truncated-length": b"\x0a\x10abc"}
METHODS = [m.name for m in api.DESCRIPTOR.services_by_name["ModelConfigService"].methods]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("body", GARBAGE.values(), ids=GARBAGE.keys())
def test_undecodable_bytes_are_invalid_argument(daemon, method, body):
    call = daemon.channel.unary_unary(f"/modelconfig.v1.ModelConfigService/{method}")
    with pytest.raises(grpc.RpcError) as err:
        call(body, timeout=5)
    typed = from_rpc_error(err.value)
    assert typed.code == grpc.StatusCode.INVALID_ARGUMENT, f"{method}: {typed}"
    assert typed.reason == "MALFORMED_REQUEST"
    assert daemon.client.resolve_for_account("acme").slots


def test_invalid_utf8_account_id_is_invalid_argument(daemon):
    call = daemon.channel.unary_unary("/modelconfig.v1.ModelConfigService/ResolveForAccount")
    with pytest.raises(grpc.RpcError) as err:
        call(b"\x0a\x02\xc3\x28", timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "do not decode" in err.value.details()


def test_unknown_enum_values_are_refused_not_crashing(daemon):
    request = api.CreateModelRequest(
        model=pb.Model(model_name="x", provider="openai", model_type=42)
    )
    with pytest.raises(grpc.RpcError) as err:
        daemon.stub.CreateModel(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_huge_inputs_are_refused_cleanly(client):
    with pytest.raises(ModelConfigError) as err:
        client.resolve_for_account("a" * 100_000)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ModelConfigError) as err:
        client.create_model(
            pb.Model(
                model_name="m",
                provider="openai",
                model_type=pb.MODEL_TYPE_TEXT,
                display_name="d" * 10_000,
            )
        )
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.resolve_for_account("語" * 100_000),
        lambda c: c.create_model(
            pb.Model(
                model_name="big",
                provider="openai",
                model_type=pb.MODEL_TYPE_TEXT,
                aliases=["語" * 300 + str(i) for i in range(33)],
            )
        ).model,
        lambda c: c.set_global_model("語" * 50_000, 1),
    ],
    ids=["account", "aliases", "slot"],
)
def test_huge_non_ascii_input_still_gets_its_error_details(client, call):
    with pytest.raises(InvalidArgument) as err:
        call(client)
    assert err.value.reason  # the ErrorInfo arrived: the trailer stayed within limits


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.resolve_for_account("acme\n"),
        lambda c: c.set_model("openai_model", 1, account_id="a" * 128 + "\n"),
        lambda c: c.create_model(
            pb.Model(model_name="n" * 100 + "\n", provider="openai", model_type=pb.MODEL_TYPE_TEXT)
        ).model,
        lambda c: c.create_model(
            pb.Model(model_name="p", provider="p" * 40 + "\n", model_type=pb.MODEL_TYPE_TEXT)
        ).model,
        lambda c: c.create_model(
            pb.Model(
                model_name="a",
                aliases=["q" * 100 + "\n"],
                provider="openai",
                model_type=pb.MODEL_TYPE_TEXT,
            )
        ).model,
        lambda c: c.get_model("gpt-4o-mini\n").model,
    ],
    ids=["resolve", "account", "name", "provider", "alias", "get"],
)
def test_trailing_newlines_are_malformed_not_new_names(client, call):
    with pytest.raises(InvalidArgument):
        call(client)


def test_longest_valid_values_are_stored_on_every_engine(client):
    model = client.create_model(
        pb.Model(
            model_name="n" * 100,
            provider="p" * 40,
            model_type=pb.MODEL_TYPE_TEXT,
            is_active=True,
            aliases=["a" * 100],
            display_name="d" * 200,
        )
    ).model
    assert client.get_model("a" * 100).model.id == model.id
    client.set_model("openai_model", 2, account_id="x" * 128)
    assert client.resolve_for_account("x" * 128).slots[0].model.id == 2


def test_deeply_nested_page_token_is_invalid_argument(client):
    import base64

    token = base64.urlsafe_b64encode(b"[" * 200_000).decode().rstrip("=")
    with pytest.raises(InvalidArgument) as err:
        client.list_models(page_token=token)
    assert err.value.reason == "INVALID_PAGE_TOKEN"


def test_unknown_model_type_filter_is_invalid_argument(client):
    with pytest.raises(InvalidArgument) as err:
        client.list_models(model_type=99)
    assert err.value.reason == "INVALID_MODEL_TYPE"


def test_client_errors_follow_the_reason_not_only_the_code(client):
    """ABORTED is not always a stale etag, nor FAILED_PRECONDITION always a misfit."""
    import modelconfig
    from modelconfig.v1 import resources_pb2 as pb

    with pytest.raises(modelconfig.EtagMismatch):
        client.set_model("openai_model", 2, account_id="acme", etag="a999")
    configuration = next(iter(client.export_configuration())).configuration
    with pytest.raises(modelconfig.RevisionMoved) as moved:
        client.apply_configuration(configuration, expected_revision=999)
    assert isinstance(moved.value, modelconfig.Aborted)
    assert not isinstance(moved.value, modelconfig.EtagMismatch)
    with pytest.raises(modelconfig.SlotRefusesModel):
        client.set_model("openai_model", "dall-e-3", account_id="acme")
    with pytest.raises(modelconfig.ModelInUse):
        client.delete_model(1)
    with pytest.raises(modelconfig.ModelNotFound):
        client.get_model(999)
    with pytest.raises(modelconfig.NotRevertible):
        client.revert_change(1)
    with pytest.raises(modelconfig.SlotRefusesModel):
        client.create_slot(pb.Slot(name="x_model", required_provider="openai",
                                   required_model_type=pb.MODEL_TYPE_TEXT, default_model_id=7))
    del configuration.slots[-1]
    with pytest.raises(modelconfig.FailedPrecondition) as plain:
        client.apply_configuration(configuration)
    # A reason without a class of its own takes its code's class.
    assert (type(plain.value), plain.value.reason) == (
        modelconfig.FailedPrecondition, "SLOT_NOT_IN_CONFIGURATION")
    assert modelconfig.__version__ == "0.1.0"
