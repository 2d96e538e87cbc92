"""The daemon's log as operators read it, on real processes: `--log-format json` for pipelines
(every line an object; the write's line found by the client's request id; refusals with their
reason, RPC and peer) and the default text format (one line per write). SQLite only: the log
does not depend on the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from modelconfig import FailedPrecondition, ModelConfigClient, PermissionDenied, Unauthenticated

from .certs import write_tokens
from .process_helpers import DaemonProcess

WRITER_TOKEN = "tok-logs-writer-4e5f6a7b8c"
WRITER = {"name": "settings-page", "role": "writer", "token": WRITER_TOKEN}


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/modelconfig.db"


def start_with_tokens(daemons, url: str, tmp_path, **env: str) -> DaemonProcess:
    tokens = write_tokens(tmp_path / "tokens.toml", WRITER)
    return daemons.start(url, env={"MODELCONFIG_TOKENS_FILE": str(tokens), **env})


def stopped_stderr(daemon: DaemonProcess) -> str:
    """The daemon's whole log: it is stopped first, so every line has been written."""
    daemon.terminate()
    assert daemon.wait_exit() == 0, daemon.describe("did not stop cleanly")
    return daemon.stderr()


@dataclass
class JsonRun:
    daemon: DaemonProcess
    lines: list[str]
    revision: int

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def json_run(daemons, sqlite_url, tmp_path) -> JsonRun:
    """A JSON-logging daemon that served a write, a refused write and a refused token."""
    daemon = start_with_tokens(daemons, sqlite_url, tmp_path, MODELCONFIG_LOG_FORMAT="json")
    with ModelConfigClient(daemon.address, token=WRITER_TOKEN) as writer:
        written = writer.set_model(
            "openai_model", "gpt-3.5-turbo", account_id="acme", request_id="req-json-write")
        with pytest.raises(FailedPrecondition):  # an anthropic model in an openai slot
            writer.set_model("openai_model", "claude-3-haiku-20240307", account_id="acme",
                             request_id="req-json-refused")
    with (
        ModelConfigClient(daemon.address, token="tok-nobody") as stranger,
        pytest.raises(Unauthenticated),
    ):
        stranger.resolve_for_account("acme")
    lines = stopped_stderr(daemon).splitlines()
    return JsonRun(daemon, lines, written.revision)


def test_every_json_log_line_is_a_json_object(json_run):
    assert json_run.lines
    for line in json_run.lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not JSON: {line!r}")
        assert isinstance(record, dict), line


def test_the_writes_json_line_has_its_actor_rpc_revision_and_request_id(json_run):
    lines = [r for r in json_run.records() if r.get("request_id") == "req-json-write"]
    assert len(lines) == 1, json_run.lines
    line = lines[0]
    assert (line.get("actor"), line.get("rpc"), line.get("revision")) == (
        "settings-page", "SetModel", json_run.revision)
    assert (line.get("scope"), line.get("before"), line.get("after")) == (
        "account", {"model_id": None}, {"model_id": 2})


def test_the_refused_writes_json_line_has_its_rpc_and_reason(json_run):
    lines = [r for r in json_run.records() if r.get("refusal") == "PROVIDER_MISMATCH"]
    assert len(lines) == 1, json_run.lines
    assert lines[0].get("rpc") == "SetModel"


def test_the_refused_tokens_json_line_has_its_reason_rpc_and_peer(json_run):
    lines = [r for r in json_run.records() if r.get("refusal") == "TOKEN_UNKNOWN"]
    assert len(lines) == 1, json_run.lines
    assert lines[0].get("rpc") == "ResolveForAccount"
    assert str(lines[0].get("peer", "")).startswith("ipv4:127.0.0.1:"), lines[0]
    assert "tok-nobody" not in "\n".join(json_run.lines)  # tokens are never logged


def test_a_writers_refused_global_set_model_is_logged_with_actor_rpc_peer_and_reason(
    daemons, sqlite_url, tmp_path
):
    daemon = start_with_tokens(daemons, sqlite_url, tmp_path, MODELCONFIG_LOG_FORMAT="json")
    with (
        ModelConfigClient(daemon.address, token=WRITER_TOKEN) as writer,
        pytest.raises(PermissionDenied),
    ):
        writer.set_global_model("openai_model", "gpt-3.5-turbo")
    records = [json.loads(line) for line in stopped_stderr(daemon).splitlines()]
    refused = [r for r in records if r.get("refusal") == "ROLE_INSUFFICIENT"]
    assert len(refused) == 1, [r.get("message") for r in records]
    assert (refused[0].get("actor"), refused[0].get("rpc")) == ("settings-page", "SetModel")
    assert str(refused[0].get("peer", "")).startswith("ipv4:127.0.0.1:"), refused[0]


def test_the_text_log_has_one_line_per_write_with_actor_rpc_change_and_revision(
    daemons, sqlite_url, tmp_path
):
    daemon = start_with_tokens(daemons, sqlite_url, tmp_path)
    with ModelConfigClient(daemon.address, token=WRITER_TOKEN) as writer:
        first = writer.set_model("openai_model", "gpt-3.5-turbo", account_id="acme",
                                 request_id="req-text-1")
        second = writer.set_model("openai_model", "gpt-4o-mini", account_id="acme",
                                  request_id="req-text-2")
    lines = stopped_stderr(daemon).splitlines()
    for request_id, change, revision in (
        ("req-text-1", "none -> 2", first.revision),
        ("req-text-2", "2 -> 1", second.revision),
    ):
        mentions = [line for line in lines if request_id in line]
        assert len(mentions) == 1, lines
        line = mentions[0]
        for part in ("settings-page", "SetModel", "acme", change, f"revision {revision}"):
            assert part in line, f"{part!r} missing from {line!r}"
