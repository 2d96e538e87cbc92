"""A first call over a real port on each engine."""


def test_resolve_seeded_defaults(client):
    got = client.resolve_for_account("acme")
    assert [(s.slot, s.model.model_name) for s in got.slots] == [
        ("openai_model", "gpt-4o-mini"),
        ("dalle_model", "dall-e-3"),
        ("runware_model", "runware-flux-1.1-pro"),
        ("anthropic_model", "claude-3-5-sonnet-20241022"),
    ]
