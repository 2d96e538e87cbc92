"""A committed write is acknowledged even when the snapshot cannot catch up at once."""

from __future__ import annotations

from modelconfigd.domain.errors import StorageUnavailable
from modelconfigd.entrypoints.app import App
from modelconfigd.service_layer.services import ModelRef


def test_a_write_whose_publication_fails_is_still_acknowledged_and_later_visible(database_url):
    app = App.open(database_url, poll_interval=None)
    try:
        real_catch_up = app.live.catch_up

        def database_gone_for_a_moment():
            raise StorageUnavailable("injected: the database went away after the commit")

        app.live.catch_up = database_gone_for_a_moment  # fault injection into our own code
        result = app.services.set_model("openai_model", ModelRef(model_id=2), "acme", "", False)
        assert result.revision == 2  # acknowledged: the transaction had committed
        assert app.services.state.revision == 1  # not yet visible here

        app.live.catch_up = real_catch_up
        app.live.catch_up()  # what the poller does on its next tick
        resolved = app.services.resolve("acme", ["openai_model"])
        assert (resolved.slots[0].model.id, resolved.revision) == (2, 2)
    finally:
        app.close()
