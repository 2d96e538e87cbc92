"""Every refusal is a deliberate status with google.rpc details; hostile bytes do no harm."""

from __future__ import annotations

import re

import grpc
import pytest

from modelconfig import ModelConfigError
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

REFUSALS = {
    "unknown-slot": lambda c: c.set_model("nope", 1),
    "not-found": lambda c: c.get_model(999),
    "exists": lambda c: c.create_model(
        pb.Model(model_name="gpt-4o-mini", provider="openai", model_type=pb.MODEL_TYPE_TEXT)
    ),
    "stale-etag": lambda c: c.set_model("openai_model", 2, etag="g0"),
    "mismatch": lambda c: c.set_model("dalle_model", 1),
    "in-use": lambda c: c.delete_model(1),
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


GARBAGE = {
    "bad-tag": b"\xff\xff\xff\xff",
    "truncated-length": b"\x0a\x10abc",
    "invalid-utf8-string": b"\x0a\x02\xc3\x28",
    "wrong-wire-type": b"\x0d\x00",
}


@pytest.mark.parametrize(
    "method", [m.name for m in api.DESCRIPTOR.services_by_name["ModelConfigService"].methods]
)
@pytest.mark.parametrize("body", GARBAGE.values(), ids=GARBAGE.keys())
def test_undecodable_bytes_are_invalid_argument(daemon, method, body):
    call = daemon.channel.unary_unary(f"/modelconfig.v1.ModelConfigService/{method}")
    try:
        call(body, timeout=5)
    except grpc.RpcError as exc:
        code = exc.code()
    else:
        code = grpc.StatusCode.OK
    if code == grpc.StatusCode.OK:
        # Some byte strings happen to be valid encodings for messages without that field
        # number; those must then be answered like any request.
        return
    assert code in DELIBERATE, f"{method} answered {code} to {body!r}"
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
