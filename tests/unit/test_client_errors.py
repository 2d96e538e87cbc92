"""The client's typed errors, including a status whose details disagree with its code."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from modelconfig import ModelConfigError, ResourceExhausted, StorageFull, from_rpc_error


@pytest.fixture
def mismatching_server():
    """A real server whose answer carries details for INVALID_ARGUMENT under another code,
    as a proxy that rewrites codes would produce."""

    def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason="X", domain="modelconfig"))
        details = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="m", details=[info])
        context.set_trailing_metadata((("grpc-status-details-bin", details.SerializeToString()),))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "rewritten by a proxy")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.T", {"M": grpc.unary_unary_rpc_method_handler(answer)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_details_that_disagree_with_the_code_give_a_typed_error_not_value_error(
    mismatching_server,
):
    with grpc.insecure_channel(mismatching_server) as channel, pytest.raises(grpc.RpcError) as raw:
        channel.unary_unary("/t.T/M")(b"", timeout=5)
    error = from_rpc_error(raw.value)
    assert isinstance(error, ModelConfigError)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "" and error.details == []


def test_a_limit_is_resource_exhausted_and_a_full_disk_says_retrying_will_not_help(
    mismatching_server,
):
    """A status carrying no details of its code still takes its code's class; the reason
    STORAGE_FULL (checked against a real full disk in tests/e2e/test_database_faults.py) its own."""
    with grpc.insecure_channel(mismatching_server) as channel, pytest.raises(grpc.RpcError) as raw:
        channel.unary_unary("/t.T/M")(b"", timeout=5)
    error = from_rpc_error(raw.value)
    assert type(error) is ResourceExhausted
    assert not isinstance(error, StorageFull)
