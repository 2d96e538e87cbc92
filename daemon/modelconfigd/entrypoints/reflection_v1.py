"""Server reflection as `grpc.reflection.v1` beside v1alpha (what grpcurl and Postman ask first).

grpcio-reflection serves only v1alpha. The v1 protocol is v1alpha under another package, field
for field (the same numbers and types), so v1 calls are served by the same servicer with
v1alpha's messages, and v1's file descriptor, derived from v1alpha's, is added to the pool so
that the reflection service can describe itself under both names.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
_ALPHA, _V1 = "grpc.reflection.v1alpha", "grpc.reflection.v1"


def _register_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindServiceByName(SERVICE_NAME)
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    file.name = "grpc/reflection/v1/reflection.proto"
    file.package = _V1
    file.options.Clear()  # v1alpha's language options (java package, ...) are not v1's
    for message in file.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # messages only: setting it on a scalar is an error
                field.type_name = field.type_name.replace(f".{_ALPHA}.", f".{_V1}.")
    for service in file.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{_ALPHA}.", f".{_V1}.")
            method.output_type = method.output_type.replace(f".{_ALPHA}.", f".{_V1}.")
    pool.Add(file)


def enable(server: grpc.Server, service_names: tuple[str, ...], pool) -> None:
    """Serve reflection under v1alpha and v1, listing `service_names` and both reflections."""
    _register_v1_descriptor(descriptor_pool.Default())
    names = (*service_names, reflection.SERVICE_NAME, SERVICE_NAME)
    reflection.enable_server_reflection(names, server, pool)
    servicer = reflection.ReflectionServicer(names, pool=pool)
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
