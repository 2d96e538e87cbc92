"""The audit trail's own retention (MODELCONFIG_AUDIT_KEEP), on SQLite and PostgreSQL: pruned
changes leave ListChanges, RevertChange and the replay window together; a daemon that had not
applied them reloads what they changed."""

from __future__ import annotations

import grpc
import pytest

from modelconfig import NotFound
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.service_layer.change_feed import KeepPolicy

from ..conftest import start_daemon
from .test_watch import Watch, changes_of

NO_POLL = {"MODELCONFIG_POLL_INTERVAL": "600"}


def test_changes_past_the_audit_retention_are_pruned_everywhere(database_url):
    daemon = start_daemon(database_url, audit_keep=KeepPolicy(revisions=3))
    client = daemon.client
    try:
        for model in ("gpt-3.5-turbo", "gpt-4o-mini", "gpt-3.5-turbo"):
            client.set_model("openai_model", model, account_id="acme")
        imported = client.import_overrides(
            [api.OverrideRecord(account_id="globex", slot="openai_model", model_id=2)]
        ).revision
        head = client.set_model("openai_model", "gpt-4o-mini", account_id="globex").revision
        assert daemon.app.feed.move_window() == head - 3

        kept = [c.revision for c in client.list_changes().changes]
        assert kept == [head, head - 1, head - 2]
        assert [c.revision for c in client.list_changes(account_id="globex").changes] == [
            head,
            imported,
        ]
        with pytest.raises(NotFound):
            client.revert_change(head - 3)
        code, reason, metadata = Watch(daemon.stub, head - 4).failure()
        assert (code, reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED")
        assert metadata["oldest_revision"] == str(head - 3)
        watch = Watch(daemon.stub, head - 3)
        assert [c.revision for c in changes_of(watch.until(head))] == [head - 2, head - 1, head]
        watch.close()
        # What the pruned changes did stays done.
        assert client.resolve_for_account("acme").slots[0].model.model_name == "gpt-3.5-turbo"
    finally:
        daemon.stop()


def test_a_daemon_that_missed_pruned_changes_reloads_what_they_changed(daemons, tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    behind = daemons.start(url, env=NO_POLL)  # learns of others' writes only by its own writes
    pruner = start_daemon(url, audit_keep=KeepPolicy(revisions=1))
    try:
        # A global change (the catalog), then another: the first is pruned before `behind`
        # has applied it, so nothing left in the trail says the catalog changed.
        pruner.client.set_model("openai_model", "gpt-3.5-turbo", scope=pb.SCOPE_GLOBAL)
        pruner.client.set_model("dalle_model", "dall-e-3", account_id="globex")
        pruner.app.feed.move_window()
        with behind.client() as client:
            # Its own write makes it catch up: the changes before it are gone, so it reloads.
            revision = client.set_model("dalle_model", "dall-e-3", account_id="initech").revision
            resolved = client.resolve_for_account("acme", slots=["openai_model"])
        assert resolved.revision == revision
        assert resolved.slots[0].model.model_name == "gpt-3.5-turbo"
        assert resolved.slots[0].source == pb.SOURCE_GLOBAL
    finally:
        pruner.stop()
