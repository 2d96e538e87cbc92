"""Generated gRPC stubs and messages of the modelconfig.v1 API (see protos/modelconfig/v1)."""
