"""The Python client's retry policy, against a stand-in server that fails on purpose: a safe
read is retried on UNAVAILABLE with backoff, a write never is (its answer may have been lost
after it committed)."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from modelconfig import ModelConfigClient, Unavailable
from modelconfig.v1 import model_config_service_pb2 as api

SERVICE = "modelconfig.v1.ModelConfigService"


@pytest.fixture
def flaky():
    """A server whose ResolveForAccount fails twice with UNAVAILABLE, then answers, and whose
    SetModel always fails with UNAVAILABLE; `calls` counts what reached it."""
    calls = {"ResolveForAccount": 0, "SetModel": 0}

    def resolve(request, context):
        calls["ResolveForAccount"] += 1
        if calls["ResolveForAccount"] <= 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return api.ResolveForAccountResponse(account_id=request.account_id, revision=7)

    def set_model(request, context):
        calls["SetModel"] += 1
        context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")

    handlers = {
        "ResolveForAccount": grpc.unary_unary_rpc_method_handler(
            resolve,
            request_deserializer=api.ResolveForAccountRequest.FromString,
            response_serializer=api.ResolveForAccountResponse.SerializeToString,
        ),
        "SetModel": grpc.unary_unary_rpc_method_handler(
            set_model,
            request_deserializer=api.SetModelRequest.FromString,
            response_serializer=api.SetModelResponse.SerializeToString,
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", calls
    finally:
        server.stop(None)


def test_a_safe_read_is_retried_on_unavailable(flaky):
    target, calls = flaky
    with ModelConfigClient(target) as client:
        assert client.resolve_for_account("acme").revision == 7
    assert calls["ResolveForAccount"] == 3


def test_a_write_is_not_retried(flaky):
    target, calls = flaky
    with ModelConfigClient(target) as client, pytest.raises(Unavailable):
        client.set_model("openai_model", 1, account_id="acme")
    assert calls["SetModel"] == 1
