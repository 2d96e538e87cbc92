"""Use cases over the store and the live snapshot: one transaction per write, no gRPC."""
