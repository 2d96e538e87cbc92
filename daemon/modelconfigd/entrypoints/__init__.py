"""Entry points: the gRPC server and servicer, the modelconfigd and modelconfigctl commands."""
