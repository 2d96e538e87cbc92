"""Pure domain logic: the catalog, slots, the merge rule and the errors; no gRPC, no database."""
