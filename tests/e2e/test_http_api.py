"""The JSON API over HTTP (--http-listen) of a real daemon process, on both engines.

Every RPC must have a `google.api.http` annotation and a case in ROUTE_CASES, which calls its
routes over HTTP and checks what a caller relies on: the route table is the proto's, so an RPC
added without a route or a test fails here. Then query parameters, PATCH with an update mask,
the NDJSON streams, tokens and roles, errors as google.rpc.Status JSON, the same refusals as
over gRPC, X-Request-Id and X-Change-Reason, the console's static files, TLS and --workers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import grpc
import psycopg
import pytest
from google.api import annotations_pb2
from grpc_status import rpc_status

from modelconfig.v1 import model_config_service_pb2 as api
from modelconfigd.entrypoints.http_api import HttpApi
from modelconfigd.entrypoints.http_routes import routes_of
from modelconfigd.entrypoints.http_server import HttpServer
from tests.conftest import Daemon, _with_database, start_daemon

from .certs import CertificateAuthority, write_tokens
from .process_helpers import DaemonProcess, Daemons
from .secure_helpers import exit_message

SERVICE = api.DESCRIPTOR.services_by_name["ModelConfigService"]
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
TOKENS = {"reader": "tok-http-reader-1a2b3c", "writer": "tok-http-writer-4d5e6f",
          "admin": "tok-http-admin-7a8b9c"}
NAMES = {"reader": "http-dashboard", "writer": "http-settings-page", "admin": "http-ops"}
TIMEOUT = 30.0  # generous: a busy 2-core machine


# -- a small HTTP client over http.client (nothing of the daemon's) ----------------------------

@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: Any  # the JSON, or the text when it is not JSON

    def error_info(self) -> dict:
        return next(d for d in self.body["details"] if d["@type"] == ERROR_INFO)


class Http:
    def __init__(self, port: int, token: str | None = None,
                 context: ssl.SSLContext | None = None) -> None:
        self.port, self.token, self.context = port, token, context

    def as_(self, role: str | None) -> Http:
        return Http(self.port, TOKENS[role] if role else None, self.context)

    def _connection(self) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=TIMEOUT,
                                               context=self.context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def _headers(self, headers: dict[str, str] | None, body: bytes | None) -> dict[str, str]:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
        return sent

    def request(self, method: str, path: str, body: Any = None, *,
                headers: dict[str, str] | None = None, raw: bytes | None = None) -> Answer:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        connection = self._connection()
        try:
            connection.request(method, path, body=data, headers=self._headers(headers, data))
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        text = payload.decode()
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Answer(response.status, response.headers, parsed)

    def get(self, path: str, **kwargs) -> Answer:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> Answer:
        return self.request("POST", path, {} if body is None else body, **kwargs)

    def ok(self, method: str, path: str, body: Any = None, **kwargs) -> dict:
        answer = self.request(method, path, body, **kwargs)
        assert answer.status == 200, (method, path, answer)
        assert answer.headers["Content-Type"].startswith("application/json")
        return answer.body

    @contextlib.contextmanager
    def stream(self, path: str) -> Iterator[tuple[http.client.HTTPResponse, Iterator[dict]]]:
        """A GET whose NDJSON lines are read one at a time as they come."""
        connection = self._connection()
        try:
            connection.request("GET", path, headers=self._headers(None, None))
            response = connection.getresponse()
            lines = (json.loads(line) for line in iter(response.readline, b""))
            yield response, lines
        finally:
            connection.close()


def refused(answer: Answer, http_status: int, code: int, reason: str) -> dict:
    """Assert an error answer: its HTTP status, a google.rpc.Status body, its ErrorInfo."""
    assert answer.status == http_status, answer
    assert answer.headers["Content-Type"].startswith("application/json"), answer
    assert answer.body["code"] == code, answer.body
    assert answer.body["message"]
    info = answer.error_info()
    assert (info["reason"], info["domain"]) == (reason, "modelconfig"), answer.body
    return answer.body


# -- the daemons ------------------------------------------------------------------------------

@dataclass
class Served:
    daemon: DaemonProcess
    http: Http  # as admin


def _database(request, workdir: Path, engine: str) -> str:
    if engine == "sqlite":
        return f"sqlite:///{workdir}/modelconfig.db"
    base = request.getfixturevalue("postgres_database")
    schema = f"http_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return _with_database(
        base, urlsplit(base).path.lstrip("/"), "options=" + quote(f"-csearch_path={schema}")
    )


def _tokens(path: Path) -> Path:
    return write_tokens(path, *({"name": NAMES[r], "role": r, "token": t}
                                for r, t in TOKENS.items()))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request, tmp_path_factory) -> Iterator[Served]:
    """One daemon per engine for the module, checking tokens, with the HTTP port on. Each test
    makes its own models, slots and accounts, so they do not depend on one another."""
    workdir = tmp_path_factory.mktemp(f"http-{request.param}")
    url = _database(request, workdir, request.param)
    daemons = Daemons(workdir)
    try:
        daemon = daemons.start(url, env={
            "MODELCONFIG_HTTP_LISTEN": "127.0.0.1:0",
            "MODELCONFIG_TOKENS_FILE": str(_tokens(workdir / "tokens.toml")),
        })
        assert daemon.http_port, "no HTTP serving line"
        yield Served(daemon, Http(daemon.http_port, TOKENS["admin"]))
    finally:
        daemons.close()


@pytest.fixture
def h(served) -> Http:
    return served.http


def unique(prefix: str = "acct") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_model(h: Http, *, provider: str = "openai", active: bool = True) -> dict:
    body = {"modelName": unique("model"), "displayName": "A test model", "provider": provider,
            "modelType": "MODEL_TYPE_TEXT", "isActive": active,
            "inputPricePer1mTokens": "1.25", "outputPricePer1mTokens": "5"}
    return h.ok("POST", "/v1/models", body)["model"]


def new_slot(h: Http) -> str:
    name = f"s_{uuid.uuid4().hex[:10]}"
    h.ok("POST", "/v1/slots", {"name": name, "requiredProvider": "openai",
                               "requiredModelType": "MODEL_TYPE_TEXT", "defaultModelId": "1"})
    return name


def set_override(h: Http, account: str, model_id: str, slot: str = "openai_model") -> dict:
    return h.ok("POST", f"/v1/accounts/{quote(account, safe='')}/settings/{slot}:set",
                {"modelId": model_id})


def resolved(h: Http, account: str) -> dict[str, dict]:
    body = h.ok("GET", f"/v1/accounts/{quote(account, safe='')}:resolve")
    return {s["slot"]: s for s in body["slots"]}


# -- every RPC: its routes, called over HTTP ----------------------------------------------------

def case_list_models(h: Http) -> None:
    first = h.ok("GET", "/v1/models?pageSize=2&provider=openai")
    assert len(first["models"]) == 2 and first["nextPageToken"]
    assert {m["provider"] for m in first["models"]} == {"openai"}
    token = first["nextPageToken"]
    second = h.ok("GET", f"/v1/models?pageSize=2&provider=openai&pageToken={token}")
    assert {m["id"] for m in second["models"]}.isdisjoint(m["id"] for m in first["models"])
    # snake_case names are accepted too, and enums by name
    texts = h.ok("GET", "/v1/models?page_size=50&model_type=MODEL_TYPE_IMAGE")["models"]
    assert texts and {m["modelType"] for m in texts} == {"MODEL_TYPE_IMAGE"}


def case_get_model(h: Http) -> None:
    model = h.ok("GET", "/v1/models/1")["model"]
    assert (model["id"], model["modelName"]) == ("1", "gpt-4o-mini")
    assert h.ok("GET", "/v1/models:lookup?modelName=gpt-4o-mini")["model"]["id"] == "1"


def case_create_model(h: Http) -> None:
    model = new_model(h)
    assert model["id"] != "0" and model["displayName"] == "A test model"
    assert h.ok("GET", f"/v1/models/{model['id']}")["model"]["modelName"] == model["modelName"]


def case_update_model(h: Http) -> None:
    model = new_model(h)
    # the mask names displayName only: the provider sent beside it is not applied
    updated = h.ok("PATCH", f"/v1/models/{model['id']}?updateMask=displayName",
                   {"displayName": "Renamed", "provider": "anthropic"})["model"]
    assert (updated["displayName"], updated["provider"]) == ("Renamed", "openai")
    both = h.ok("PATCH", f"/v1/models/{model['id']}?updateMask=displayName,contextWindow",
                {"displayName": "Twice", "contextWindow": 4096})["model"]
    assert (both["displayName"], both["contextWindow"]) == ("Twice", 4096)


def case_delete_model(h: Http) -> None:
    model = new_model(h)
    assert h.ok("DELETE", f"/v1/models/{model['id']}")["revision"] != "0"
    refused(h.get(f"/v1/models/{model['id']}"), 404, 5, "MODEL_NOT_FOUND")


def case_retire_model(h: Http) -> None:
    old, new = new_model(h), new_model(h)
    account = unique()
    set_override(h, account, old["id"])
    retired = h.ok("POST", f"/v1/models/{old['id']}:retire", {"successorId": new["id"]})
    assert retired["successor"]["id"] == new["id"] and retired["accounts"] == "1"
    assert resolved(h, account)["openai_model"]["model"]["id"] == new["id"]


def case_get_model_usage(h: Http) -> None:
    model = new_model(h)
    account = unique()
    set_override(h, account, model["id"])
    usage = h.ok("GET", f"/v1/models/{model['id']}:usage")
    assert usage["accountIds"] == [account] and usage["accountOverrideCount"] == "1"


def case_get_global_settings(h: Http) -> None:
    settings = h.ok("GET", "/v1/settings")
    assert settings["etag"] and "openai_model" in {s["slot"] for s in settings["slots"]}


def case_set_model(h: Http) -> None:
    slot = new_slot(h)
    etag = h.ok("GET", "/v1/settings")["etag"]
    body = {"scope": "SCOPE_GLOBAL", "modelName": "gpt-4o", "etag": etag}
    setting = h.ok("POST", f"/v1/settings/{slot}:set", body)["setting"]
    assert setting["model"]["modelName"] == "gpt-4o"
    account = unique()
    h.ok("POST", f"/v1/accounts/{account}/settings/{slot}:set", {"modelId": "1"})
    assert resolved(h, account)[slot]["source"] == "SOURCE_ACCOUNT"


def case_clear_global_model(h: Http) -> None:
    slot = new_slot(h)
    h.ok("POST", f"/v1/settings/{slot}:set", {"scope": "SCOPE_GLOBAL", "modelName": "gpt-4o"})
    assert h.ok("POST", f"/v1/settings/{slot}:clear")["etag"]
    refused(h.post(f"/v1/settings/{slot}:clear"), 404, 5, "GLOBAL_SETTING_NOT_FOUND")


def case_clear_account_model(h: Http) -> None:
    account = unique()
    set_override(h, account, "8")
    h.ok("POST", f"/v1/accounts/{account}/settings/openai_model:clear")
    assert resolved(h, account)["openai_model"]["source"] != "SOURCE_ACCOUNT"
    refused(h.post(f"/v1/accounts/{account}/settings/openai_model:clear"), 404, 5,
            "OVERRIDE_NOT_FOUND")


def case_resolve_for_account(h: Http) -> None:
    # The seed's frontend shape: each slot's model with its id, name, display name, provider.
    for account in (unique(), "org:7", "team/blue"):  # `:` and an escaped `/` in the path
        set_override(h, account, "8")
        slots = resolved(h, account)
        model = slots["openai_model"]["model"]
        assert (model["id"], model["modelName"], model["displayName"], model["provider"]) == (
            "8", "gpt-4o", "GPT-4o", "openai")
        assert slots["openai_model"]["source"] == "SOURCE_ACCOUNT"
        assert all(s["model"]["id"] != "0" and s["model"]["provider"] for s in slots.values())
    only = h.ok("GET", "/v1/accounts/x1:resolve?slots=openai_model&slots=anthropic_model")
    assert [s["slot"] for s in only["slots"]] == ["openai_model", "anthropic_model"]


def case_resolve_for_accounts(h: Http) -> None:
    answer = h.ok("POST", "/v1/accounts:resolve",
                  {"accountIds": ["a-1", "a-2"], "slots": ["openai_model"]})
    assert [r["accountId"] for r in answer["results"]] == ["a-1", "a-2"]


def case_list_accounts(h: Http) -> None:
    model = new_model(h)
    account = unique()
    set_override(h, account, model["id"])
    listed = h.ok("GET", f"/v1/accounts?modelId={model['id']}&pageSize=10")
    assert [a["accountId"] for a in listed["accounts"]] == [account]


def case_list_slots(h: Http) -> None:
    slots = {s["name"]: s for s in h.ok("GET", "/v1/slots")["slots"]}
    assert slots["openai_model"]["requiredProvider"] == "openai"


def case_create_slot(h: Http) -> None:
    name = new_slot(h)
    assert name in {s["name"] for s in h.ok("GET", "/v1/slots")["slots"]}
    refused(h.post("/v1/slots", {"name": name, "requiredProvider": "openai",
                                 "requiredModelType": "MODEL_TYPE_TEXT", "defaultModelId": "1"}),
            409, 6, "SLOT_NAME_TAKEN")


def case_update_slot(h: Http) -> None:
    name = new_slot(h)
    slot = h.ok("PATCH", f"/v1/slots/{name}?updateMask=displayName",
                {"displayName": "Shiny", "requiredProvider": "anthropic"})["slot"]
    assert (slot["displayName"], slot["requiredProvider"]) == ("Shiny", "openai")


def case_estimate_cost(h: Http) -> None:
    answer = h.ok("GET", "/v1/slots/openai_model:estimateCost?scope=SCOPE_GLOBAL"
                         "&inputTokens=1000000&outputTokens=1000000")
    assert answer["estimates"]
    assert {e["model"]["provider"] for e in answer["estimates"]} == {"openai"}


def case_list_changes(h: Http) -> None:
    account = unique()
    h.ok("POST", f"/v1/accounts/{account}/settings/openai_model:set", {"modelId": "8"},
         headers={"X-Change-Reason": "ticket 42", "X-Request-Id": "req-list-changes"})
    changes = h.ok("GET", f"/v1/changes?accountId={account}&pageSize=5")["changes"]
    assert [(c["reason"], c["requestId"], c["actor"]) for c in changes] == [
        ("ticket 42", "req-list-changes", NAMES["admin"])]


def case_revert_change(h: Http) -> None:
    account = unique()
    revision = set_override(h, account, "8")["revision"]
    h.ok("POST", f"/v1/changes/{revision}:revert", {})
    assert resolved(h, account)["openai_model"]["source"] != "SOURCE_ACCOUNT"


def case_import_overrides(h: Http) -> None:
    accounts = [unique(), unique()]
    rows = [{"line": n, "accountId": a, "slot": "openai_model", "modelName": "gpt-4o"}
            for n, a in enumerate(accounts, start=1)]
    answer = h.ok("POST", "/v1/overrides:import", {"rows": rows})
    assert (answer["rows"], answer["accounts"]) == ("2", "2")
    assert resolved(h, accounts[1])["openai_model"]["model"]["modelName"] == "gpt-4o"


def case_watch_changes(h: Http) -> None:
    start = h.ok("GET", "/v1/settings")["revision"]
    account = unique()
    with h.stream(f"/v1/changes:watch?startRevision={start}") as (response, lines):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        assert "revision" in next(lines)  # the first response comes at once
        set_override(h, account, "8")  # made meanwhile, by another connection
        for line in lines:
            if any(c.get("accountId") == account for c in line["changes"]):
                break
        else:
            raise AssertionError("the stream ended before the change came")


def case_export_configuration(h: Http) -> None:
    account = unique()
    set_override(h, account, "8")
    with h.stream("/v1/configuration") as (response, lines):
        assert response.status == 200
        parts = list(lines)
    first = parts[0]
    assert first["configuration"]["models"] and first["configuration"]["slots"]
    overrides = [o for part in parts for o in part["overrides"]]
    assert len(overrides) == int(first["overrideCount"])
    assert {"accountId": account, "slot": "openai_model", "modelId": "8"}.items() <= next(
        o for o in overrides if o["accountId"] == account).items()


def case_apply_configuration(h: Http) -> None:
    with h.stream("/v1/configuration") as (_, lines):
        first = next(lines)
    body = {"configuration": first["configuration"], "validateOnly": True,
            "expectedRevision": first["revision"]}
    assert h.ok("POST", "/v1/configuration:apply", body)["revision"] == first["revision"]
    body["expectedRevision"] = str(int(first["revision"]) + 1000)
    refused(h.post("/v1/configuration:apply", body), 409, 10, "REVISION_MOVED")


ROUTE_CASES: dict[str, Callable[[Http], None]] = {
    "ListModels": case_list_models,
    "GetModel": case_get_model,
    "CreateModel": case_create_model,
    "UpdateModel": case_update_model,
    "DeleteModel": case_delete_model,
    "RetireModel": case_retire_model,
    "GetModelUsage": case_get_model_usage,
    "GetGlobalSettings": case_get_global_settings,
    "SetModel": case_set_model,
    "ClearGlobalModel": case_clear_global_model,
    "ClearAccountModel": case_clear_account_model,
    "ResolveForAccount": case_resolve_for_account,
    "ResolveForAccounts": case_resolve_for_accounts,
    "ListAccounts": case_list_accounts,
    "ListSlots": case_list_slots,
    "CreateSlot": case_create_slot,
    "UpdateSlot": case_update_slot,
    "EstimateCost": case_estimate_cost,
    "ListChanges": case_list_changes,
    "RevertChange": case_revert_change,
    "ImportOverrides": case_import_overrides,
    "WatchChanges": case_watch_changes,
    "ExportConfiguration": case_export_configuration,
    "ApplyConfiguration": case_apply_configuration,
}


def test_every_rpc_has_an_http_route_and_a_case():
    for method in SERVICE.methods:
        assert method.GetOptions().HasExtension(annotations_pb2.http), f"{method.name}: no route"
    assert set(ROUTE_CASES) == {m.name for m in SERVICE.methods}
    assert {r.rpc.name for r in routes_of(SERVICE)} == set(ROUTE_CASES)


def test_the_readme_route_table_is_the_annotations():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## JSON over HTTP\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(GET|POST|PATCH|DELETE) (\S+)` \| ([\w ]+?) \|", section, re.MULTILINE)
    annotated = {(r.http_method, r.template, r.rpc.name) for r in routes_of(SERVICE)}
    assert set(rows) == annotated | {("GET", "/v1/caller", "HTTP only")}
    assert len(rows) == len(set(rows))


@pytest.mark.parametrize("rpc", sorted(ROUTE_CASES))
def test_route(h, rpc):
    ROUTE_CASES[rpc](h)


# -- tokens and roles -------------------------------------------------------------------------

def test_no_token_is_unauthenticated(h):
    refused(h.as_(None).get("/v1/settings"), 401, 16, "TOKEN_MISSING")
    refused(h.as_(None).get("/v1/caller"), 401, 16, "TOKEN_MISSING")
    unknown = Http(h.port, "tok-nobody-000")
    refused(unknown.get("/v1/models/1"), 401, 16, "TOKEN_UNKNOWN")
    # refused before the request is looked at: malformed JSON from nobody is still a 401
    refused(h.as_(None).request("POST", "/v1/models", raw=b"{nope"), 401, 16, "TOKEN_MISSING")
    # a bearer challenge, as RFC 6750 asks of a 401
    assert h.as_(None).get("/v1/settings").headers["WWW-Authenticate"].startswith("Bearer")


def test_hostile_bodies_and_queries_are_bad_requests(h):
    """Nesting deeper than Python's parser, and a query that gives a field both whole and by
    its parts, are the caller's mistakes (400), not the daemon's (500)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    refused(h.request("POST", "/v1/accounts:resolve", raw=deep), 400, 3, "MALFORMED_REQUEST")
    nested = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    refused(h.request("POST", "/v1/accounts:resolve", raw=nested), 400, 3, "MALFORMED_REQUEST")
    for query in ("updateMask=displayName&updateMask.paths=x",
                  "updateMask.paths=x&updateMask=displayName"):
        answer = h.request("PATCH", f"/v1/models/1?{query}", {"displayName": "x"})
        assert answer.status == 400, answer
        assert answer.error_info()["reason"] in ("REPEATED_QUERY_PARAMETER",
                                                 "UNKNOWN_QUERY_PARAMETER"), answer.body
    refused(h.get("/v1/changes?startTime=2020-01-01T00:00:00Z&startTime.seconds=1"),
            400, 3, "UNKNOWN_QUERY_PARAMETER")
    assert h.ok("GET", "/v1/models/1")["model"]["displayName"] != "x"


def test_no_page_may_frame_the_console_or_the_api(h):
    for path in ("/console/", "/v1/caller"):
        headers = h.get(path).headers
        assert headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path


def test_roles(h):
    account = unique()
    reader, writer = h.as_("reader"), h.as_("writer")
    assert reader.ok("GET", f"/v1/accounts/{account}:resolve")["accountId"] == account
    body = refused(reader.post(f"/v1/accounts/{account}/settings/openai_model:set",
                               {"modelId": "8"}), 403, 7, "ROLE_INSUFFICIENT")
    assert body["details"][0]["metadata"]["required_role"] == "writer"
    writer.ok("POST", f"/v1/accounts/{account}/settings/openai_model:set", {"modelId": "8"})
    slot = new_slot(h)
    refused(writer.post(f"/v1/settings/{slot}:set", {"scope": "SCOPE_GLOBAL", "modelId": "8"}),
            403, 7, "ROLE_INSUFFICIENT")
    refused(writer.post("/v1/models", {"modelName": unique("m")}), 403, 7, "ROLE_INSUFFICIENT")
    h.ok("POST", f"/v1/settings/{slot}:set", {"scope": "SCOPE_GLOBAL", "modelId": "8"})
    # the actor recorded is the token's name
    changes = h.ok("GET", f"/v1/changes?accountId={account}")["changes"]
    assert [c["actor"] for c in changes] == [NAMES["writer"]]


@pytest.mark.parametrize("role", ["reader", "writer", "admin"])
def test_caller_says_who_the_token_is(h, role):
    assert h.as_(role).ok("GET", "/v1/caller") == {
        "name": NAMES[role], "role": role, "authenticated": True}


# -- errors -----------------------------------------------------------------------------------

def test_errors_are_status_json_with_the_http_status_of_their_code(h):
    refused(h.get("/v1/models/987654"), 404, 5, "MODEL_NOT_FOUND")
    refused(h.get("/v1/models/abc"), 400, 3, "MALFORMED_REQUEST")
    refused(h.get("/v1/models?pageSize=-1"), 400, 3, "INVALID_PAGE_SIZE")
    refused(h.get("/v1/models?noSuchField=1"), 400, 3, "UNKNOWN_QUERY_PARAMETER")
    refused(h.request("POST", "/v1/models", raw=b"{not json"), 400, 3, "MALFORMED_REQUEST")
    refused(h.post("/v1/models", {"noSuchField": 1}), 400, 3, "MALFORMED_REQUEST")
    refused(h.post("/v1/models", {"modelName": "gpt-4o", "displayName": "x",
                                  "provider": "openai", "modelType": "MODEL_TYPE_TEXT"}),
            409, 6, "MODEL_NAME_TAKEN")
    invalid = refused(h.post("/v1/models", {"modelName": unique("m")}), 400, 3, "INVALID_MODEL")
    assert any(d["@type"].endswith("google.rpc.BadRequest") for d in invalid["details"])
    refused(h.get("/v1/accounts/a1:resolve?slots=nope"), 400, 3, "UNKNOWN_SLOT")


def test_a_stale_etag_is_a_conflict(h):
    account = unique()
    etag = set_override(h, account, "8")["etag"]
    set_override(h, account, "1")  # someone else, meanwhile
    body = refused(h.post(f"/v1/accounts/{account}/settings/openai_model:set",
                          {"modelId": "8", "etag": etag}), 409, 10, "ETAG_MISMATCH")
    assert body["details"][0]["metadata"]


def test_price_fields_in_masks_are_printed_and_read(h):
    """`input_price_per_1m_tokens` has no JSON name that json_format reads back: a change that
    touched it must still print (History lists it), and an update mask must still name it."""
    model = new_model(h)
    change = h.ok("GET", f"/v1/changes?modelId={model['id']}")["changes"][0]
    changed = change["changedFields"].split(",")
    assert {"inputPricePer1mTokens", "outputPricePer1mTokens"} <= set(changed)
    for mask in ("inputPricePer1mTokens", "input_price_per_1m_tokens"):
        price = "2.5" if mask[0] == "i" and "_" in mask else "3"
        updated = h.ok("PATCH", f"/v1/models/{model['id']}?updateMask={mask}",
                       {"inputPricePer1mTokens": price, "displayName": "not in the mask"})
        assert updated["model"]["inputPricePer1mTokens"] == price
        assert updated["model"]["displayName"] == "A test model"
    watched = h.ok("GET", f"/v1/changes?modelId={model['id']}&pageSize=1")["changes"][0]
    assert watched["changedFields"] == "inputPricePer1mTokens"


def test_unknown_path_and_wrong_method(h):
    missing = refused(h.get("/v1/nothing/here"), 404, 5, "ROUTE_NOT_FOUND")
    assert missing["details"][0]["metadata"]["path"] == "/v1/nothing/here"
    wrong = h.request("PUT", "/v1/models")
    refused(wrong, 405, 12, "METHOD_NOT_ALLOWED")
    assert wrong.headers["Allow"] == "GET, POST"
    refused(h.request("DELETE", "/v1/caller"), 405, 12, "METHOD_NOT_ALLOWED")
    refused(h.get("/v1/models/1:nosuchverb"), 404, 5, "ROUTE_NOT_FOUND")


def test_the_same_refusal_as_over_grpc(served, h):
    """A model of the wrong provider: FAILED_PRECONDITION, and the very Status gRPC gives."""
    account = unique()
    over_http = refused(h.post(f"/v1/accounts/{account}/settings/openai_model:set",
                               {"modelName": "claude-3-5-sonnet-20241022"}),
                        400, 9, "PROVIDER_MISMATCH")
    stub_call = served.daemon.channel().unary_unary(
        "/modelconfig.v1.ModelConfigService/SetModel",
        request_serializer=api.SetModelRequest.SerializeToString,
        response_deserializer=api.SetModelResponse.FromString)
    with pytest.raises(grpc.RpcError) as caught:
        stub_call(api.SetModelRequest(slot="openai_model", account_id=account,
                                      model_name="claude-3-5-sonnet-20241022"),
                  metadata=[("authorization", f"Bearer {TOKENS['admin']}")], timeout=TIMEOUT)
    over_grpc = rpc_status.from_call(caught.value)
    from google.protobuf import json_format
    assert json_format.MessageToDict(over_grpc) == over_http


def test_writes_from_another_sites_page_are_refused(h):
    """A browser names the page's origin on a cross-origin POST, which it may send without
    asking (a form, a no-cors fetch): another site's page cannot write through this API."""
    account = unique()
    path = f"/v1/accounts/{account}/settings/openai_model:set"
    refused(h.post(path, {"modelId": "8"}, headers={"Origin": "http://evil.example"}),
            403, 7, "CROSS_ORIGIN")
    # a sandboxed frame, a data: page or a redirect sends `Origin: null`, which names no host
    refused(h.post(path, {"modelId": "8"}, headers={"Origin": "null"}), 403, 7, "CROSS_ORIGIN")
    assert resolved(h, account)["openai_model"]["source"] != "SOURCE_ACCOUNT"
    # the console's own pages (same host and port) and clients that send no Origin may
    h.ok("POST", path, {"modelId": "8"}, headers={"Origin": f"http://127.0.0.1:{h.port}"})
    h.ok("POST", path, {"modelId": "1"}, headers={  # behind a proxy that rewrites Host
        "Origin": "https://console.example", "X-Forwarded-Host": "console.example"})
    assert h.get("/v1/settings", headers={"Origin": "http://evil.example"}).status == 200


# -- request ids and reasons ------------------------------------------------------------------

def test_request_id_is_echoed_and_the_reason_recorded(h):
    account = unique()
    answer = h.request("POST", f"/v1/accounts/{account}/settings/openai_model:set",
                       {"modelId": "8"},
                       headers={"X-Request-Id": "req-7f3a", "X-Change-Reason": "customer asked"})
    assert answer.status == 200 and answer.headers["X-Request-Id"] == "req-7f3a"
    generated = h.request("POST", f"/v1/accounts/{account}/settings/openai_model:set",
                          {"modelId": "1"})
    assert generated.headers["X-Request-Id"]  # made up by the daemon, and recorded
    changes = h.ok("GET", f"/v1/changes?accountId={account}")["changes"]
    assert [(c["requestId"], c["reason"]) for c in changes] == [
        (generated.headers["X-Request-Id"], ""), ("req-7f3a", "customer asked")]
    assert h.get("/v1/settings", headers={"X-Request-Id": "read-1"}).headers[
        "X-Request-Id"] == "read-1"
    refused(h.post(f"/v1/accounts/{account}/settings/openai_model:set", {"modelId": "8"},
                   headers={"X-Change-Reason": "x" * 1001}), 400, 3, "INVALID_CHANGE_REASON")


# -- the streams ------------------------------------------------------------------------------

def test_watch_refuses_a_negative_start_before_streaming(h):
    refused(h.get("/v1/changes:watch?startRevision=-1"), 400, 3, "INVALID_FIELD")


@pytest.fixture
def in_process(tmp_path) -> Iterator[tuple[Daemon, Http]]:
    """An in-process daemon that serves one stream at most, with the HTTP API beside it."""
    daemon = start_daemon(f"sqlite:///{tmp_path}/streams.db", max_streams=1)
    running = daemon.running
    server = HttpServer(HttpApi(running.handlers, None, running.streams.pool, 2), "127.0.0.1:0")
    try:
        server.start()
        yield daemon, Http(server.port)
    finally:
        server.stop()
        daemon.stop()


def test_an_open_daemon_answers_only_requests_naming_it_by_address(in_process):
    """A daemon without tokens trusts whoever reaches it, so a page that points its own DNS
    name at 127.0.0.1 (DNS rebinding) must not: such requests name the page's host."""
    _, http = in_process
    for host in (f"evil.example:{http.port}", "rebind.attacker.test"):
        refused(http.get("/v1/settings", headers={"Host": host}), 403, 7, "HOST_NOT_ALLOWED")
        refused(http.post("/v1/settings/openai_model:set", {"modelId": "8",
                          "scope": "SCOPE_GLOBAL"}, headers={"Host": host}),
                403, 7, "HOST_NOT_ALLOWED")
    for host in (f"127.0.0.1:{http.port}", f"localhost:{http.port}", f"[::1]:{http.port}"):
        assert http.get("/v1/settings", headers={"Host": host}).status == 200, host
    assert http.get("/v1/settings").body["slots"][0]["model"]["id"] != "8"


def test_a_closed_watch_frees_its_stream(in_process):
    """HTTP watches take the gRPC streams' slots (here one), and one whose client closes the
    connection ends on the daemon and gives its slot back."""
    _, h = in_process
    with h.stream("/v1/changes:watch") as (response, lines):
        assert response.status == 200 and "revision" in next(lines)
        refused(h.get("/v1/changes:watch"), 429, 8, "TOO_MANY_WATCHERS")
    deadline = time.monotonic() + TIMEOUT
    while True:  # the daemon notices the closed connection within a second or so
        answer = h.request("GET", "/v1/configuration")  # a stream too: it needs the slot
        if answer.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer.status == 200, answer


def test_a_watch_ends_with_an_error_line_when_the_daemon_drains(in_process):
    daemon, h = in_process
    with h.stream("/v1/changes:watch") as (_, lines):
        assert "revision" in next(lines)
        daemon.app.feed.close()  # what SIGTERM does after the drain period
        last = None
        for last in lines:
            if "error" in last:
                break
    assert last is not None and last["error"]["code"] == 14  # UNAVAILABLE: go elsewhere
    info = next(d for d in last["error"]["details"] if d["@type"] == ERROR_INFO)
    assert info["reason"] == "DRAINING"


# -- the console ------------------------------------------------------------------------------

def test_root_redirects_to_the_console_served_from_the_package(h):
    root = h.as_(None).get("/")
    assert root.status == 302 and root.headers["Location"] == "/console/"
    page = h.as_(None).get("/console/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    index = Path(__file__).resolve().parents[2] / "daemon/modelconfigd/console/index.html"
    assert page.body == index.read_text()


# -- other ways of serving ----------------------------------------------------------------------

def test_an_open_daemon_calls_everyone_admin_and_holds_its_port(daemons, tmp_path):
    daemon = daemons.start(f"sqlite:///{tmp_path}/open.db",
                           env={"MODELCONFIG_HTTP_LISTEN": "127.0.0.1:0"})
    h = Http(daemon.http_port)
    assert h.ok("GET", "/v1/caller") == {"name": "anonymous", "role": "admin",
                                         "authenticated": False}
    account = unique()
    h.ok("POST", f"/v1/accounts/{account}/settings/openai_model:set", {"modelId": "8"})
    changes = h.ok("GET", f"/v1/changes?accountId={account}")["changes"]
    assert changes[0]["actor"] == "ipv4:127.0.0.1"  # as over gRPC: the caller's address
    # a second daemon cannot take the same HTTP port: it says so and exits
    second = daemons.spawn(f"sqlite:///{tmp_path}/second.db",
                           env={"MODELCONFIG_HTTP_LISTEN": f"127.0.0.1:{daemon.http_port}"})
    assert second.wait_exit() == 1
    assert "cannot listen on" in second.stderr() and "for HTTP" in second.stderr()
    # SIGTERM ends an open watch with an error line (UNAVAILABLE DRAINING), then exits 0
    with h.stream("/v1/changes:watch") as (_, lines):
        next(lines)
        daemon.terminate()
        last = list(lines)[-1]
    assert last["error"]["code"] == 14 and last["error"]["details"][0]["reason"] == "DRAINING"
    assert daemon.wait_exit() == 0


def test_https_with_the_daemons_certificate_and_client_certificates(daemons, tmp_path):
    """TLS serves HTTPS with the gRPC port's files; with a client CA a client certificate is
    required, and the tokens file's common_name entries name its caller, as over gRPC."""
    ca = CertificateAuthority(tmp_path)
    server, client = ca.server(), ca.client("http-cert-client")
    tokens = write_tokens(
        tmp_path / "tokens.toml",
        {"name": NAMES["reader"], "role": "reader", "token": TOKENS["reader"]},
        {"name": "batch-job", "role": "writer", "common_name": "http-cert-client"},
    )
    daemon = daemons.start(f"sqlite:///{tmp_path}/tls.db", env={
        "MODELCONFIG_HTTP_LISTEN": "127.0.0.1:0",
        "MODELCONFIG_TLS_CERT": str(server.cert), "MODELCONFIG_TLS_KEY": str(server.key),
        "MODELCONFIG_TLS_CLIENT_CA": str(ca.path), "MODELCONFIG_TOKENS_FILE": str(tokens),
    })
    context = ssl.create_default_context(cafile=str(ca.path))
    context.load_cert_chain(client.cert, client.key)
    by_certificate = Http(daemon.http_port, None, context)
    assert by_certificate.ok("GET", "/v1/caller") == {
        "name": "batch-job", "role": "writer", "authenticated": True}
    account = unique()
    by_certificate.ok("POST", f"/v1/accounts/{account}/settings/openai_model:set",
                      {"modelId": "8"})
    assert Http(daemon.http_port, TOKENS["reader"], context).ok("GET", "/v1/caller")[
        "name"] == NAMES["reader"]  # a token, when sent, names the caller
    no_certificate = ssl.create_default_context(cafile=str(ca.path))
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        Http(daemon.http_port, TOKENS["reader"], no_certificate).get("/v1/caller")
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        Http(daemon.http_port).get("/v1/caller")  # plain HTTP is not served there


def test_workers_share_the_http_port(daemons, tmp_path):
    daemon = daemons.start(f"sqlite:///{tmp_path}/workers.db", env={
        "MODELCONFIG_HTTP_LISTEN": "127.0.0.1:0", "MODELCONFIG_WORKERS": "2"})
    h = Http(daemon.http_port)
    account = unique()
    h.ok("POST", f"/v1/accounts/{account}/settings/openai_model:set", {"modelId": "8"})
    # every worker answers on the one port, and each sees the write once its poll of the
    # database does: the answers are the old model or the new, until twenty in a row are new
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    while seen[-20:] != ["8"] * 20:
        assert time.monotonic() < deadline, f"a worker never saw the write: {seen[-40:]}"
        seen.append(resolved(h, account)["openai_model"]["model"]["id"])
        assert seen[-1] in ("8", "1"), seen
    daemon.terminate()
    assert daemon.wait_exit() == 0


def test_http_on_any_address_is_refused_without_tls_and_tokens(daemons, tmp_path):
    """The gRPC port on loopback does not make an HTTP port on every address safe."""
    daemon = daemons.spawn(f"sqlite:///{tmp_path}/any.db",
                           env={"MODELCONFIG_HTTP_LISTEN": "0.0.0.0:0"})
    code, stderr = exit_message(daemon, timeout=90)  # generous: a loaded machine starts slowly
    assert code == 1 and "0.0.0.0:0" in stderr and "TLS (MODELCONFIG_TLS_CERT" in stderr
