"""modelconfigd: the gRPC daemon that is the single source of truth for which AI models are used."""
