"""Tokens, roles and client certificates: who may call which RPC, and who a change is recorded as.

Every RPC of modelconfig.v1.ModelConfigService is taken from the service descriptor, so an RPC
added without a role fails here. The RPC matrix runs on in-process servers over SQLite (the
check happens before the request is decoded or the database is touched); writes, actors and
metrics on both engines; start-up refusals and mutual TLS on real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelconfig import ModelConfigClient, PermissionDenied, Unauthenticated, Unavailable
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.domain.access import Role
from modelconfigd.entrypoints.app import App
from modelconfigd.entrypoints.auth import REQUIRED_ROLES, Guard
from modelconfigd.entrypoints.grpc_server import RunningServer, create_server
from modelconfigd.entrypoints.metrics import Metrics
from modelconfigd.entrypoints.tokens import load_tokens

from .certs import CertificateAuthority, tokens_toml, write_tokens
from .secure_helpers import exit_message, refusal

SERVICE = api.DESCRIPTOR.services_by_name["ModelConfigService"]
METHODS = {m.name: m for m in SERVICE.methods}
GRPCURL = Path(sys.executable).parent / "grpcurl"
CTL = Path(sys.executable).with_name("modelconfigctl")

# One caller of each role: the entry's name (the actor of its changes) and its token.
CALLERS = {
    Role.READER: ("dashboard", "tok-reader-5c0e3f0b9a"),
    Role.WRITER: ("settings-page", "tok-writer-7d1a2b3c4d"),
    Role.ADMIN: ("ops-team", "tok-admin-9e8f7a6b5c"),
}
UNKNOWN_TOKEN = "tok-nobody-0000000000"


def token_of(role: Role) -> str:
    return CALLERS[role][1]


def name_of(role: Role) -> str:
    return CALLERS[role][0]


def tokens_file(path: Path) -> Path:
    return write_tokens(
        path,
        *({"name": name, "role": role.label, "token": token}
          for role, (name, token) in CALLERS.items()),
    )


def call(
    channel: grpc.Channel,
    method: str,
    *,
    token: str | None = None,
    authorization: str | None = None,
) -> grpc.RpcError | None:
    """Call one RPC with an empty request (a single empty chunk for a client stream; for a
    server stream, its first response is read and the rest cancelled); its error."""
    metadata = []
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    if authorization is not None:
        metadata.append(("authorization", authorization))
    path = f"/{SERVICE.full_name}/{method}"
    try:
        if METHODS[method].client_streaming:
            channel.stream_unary(path)(iter([b""]), metadata=metadata, timeout=10)
        elif METHODS[method].server_streaming:
            responses = channel.unary_stream(path)(b"", metadata=metadata, timeout=10)
            next(responses)
            responses.cancel()
        else:
            channel.unary_unary(path)(b"", metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return error
    return None


@dataclass
class Guarded:
    """A daemon in this process that checks tokens and counts metrics."""

    app: App
    running: RunningServer
    metrics: Metrics
    channel: grpc.Channel
    _clients: list[ModelConfigClient]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def client(self, token: str | None = None) -> ModelConfigClient:
        client = ModelConfigClient(channel=self.channel, token=token)
        self._clients.append(client)
        return client

    def as_role(self, role: Role) -> ModelConfigClient:
        return self.client(token_of(role))

    def auth_failures(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "modelconfig_auth_failures_total", {"reason": reason}
        )
        return value or 0.0

    def stop(self) -> None:
        self.channel.close()
        self.running.stop(None)
        self.app.close()
        self.metrics.close()


def start_guarded(url: str, tokens_path: Path) -> Guarded:
    metrics = Metrics()
    app = App.open(url, poll_interval=0.05, on_publish=metrics.published)
    guard = Guard(load_tokens(str(tokens_path)), False, metrics.refused)
    running = create_server(
        "127.0.0.1:0", app.services, app.feed, max_workers=4, guard=guard, metrics=metrics
    )
    running.server.start()
    running.set_serving()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    return Guarded(app, running, metrics, channel, [])


@pytest.fixture
def matrix(tmp_path) -> Iterator[Guarded]:
    """A guarded server over SQLite for the RPC matrix (one per test: the tables are bound to
    one database per process, so two Apps must not live at once)."""
    server = start_guarded(f"sqlite:///{tmp_path}/matrix.db", tokens_file(tmp_path / "t.toml"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def guarded(database_url, tmp_path) -> Iterator[Guarded]:
    server = start_guarded(database_url, tokens_file(tmp_path / "tokens.toml"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/modelconfig.db"


# -- every RPC, every credential ---------------------------------------------------------------


def test_every_rpc_of_the_service_has_a_required_role():
    missing = sorted(set(METHODS) - set(REQUIRED_ROLES))
    assert not missing, f"RPCs without an entry in auth.REQUIRED_ROLES: {missing}"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_call_without_a_token_is_unauthenticated_token_missing(matrix, method):
    error = call(matrix.channel, method)
    assert refusal(error)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_an_unknown_token_is_unauthenticated_token_unknown(matrix, method):
    error = call(matrix.channel, method, token=UNKNOWN_TOKEN)
    assert refusal(error)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_UNKNOWN")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_basic_authorization_is_token_missing(matrix, method):
    error = call(matrix.channel, method, authorization=f"Basic {token_of(Role.ADMIN)}")
    assert refusal(error)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


_WEAKER = [
    (method, role)
    for method in sorted(METHODS)
    for role in Role
    if role < REQUIRED_ROLES.get(method, Role.ADMIN)
]


@pytest.mark.parametrize(
    ("method", "role"), _WEAKER, ids=[f"{m}-{r.label}" for m, r in _WEAKER]
)
def test_a_role_below_the_required_one_is_permission_denied(matrix, method, role):
    error = call(matrix.channel, method, token=token_of(role))
    code, reason, metadata = refusal(error)
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_INSUFFICIENT")
    required = REQUIRED_ROLES[method]
    assert (metadata.get("role"), metadata.get("required_role")) == (role.label, required.label)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_required_role_passes_the_check(matrix, method):
    error = call(matrix.channel, method, token=token_of(REQUIRED_ROLES[method]))
    checked = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    assert error is None or error.code() not in checked, error


@pytest.mark.parametrize("service", ["", SERVICE.full_name])
def test_health_check_needs_no_token(matrix, service):
    stub = health_pb2_grpc.HealthStub(matrix.channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services_without_a_token(matrix):
    done = subprocess.run(
        [str(GRPCURL), "-plaintext", matrix.address, "list"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0, done
    assert set(done.stdout.split()) == {
        SERVICE.full_name, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection"}


# -- what each role may write, and the actor ---------------------------------------------------


def record(line: int, account: str, slot: str, model: str) -> api.OverrideRecord:
    return api.OverrideRecord(line=line, account_id=account, slot=slot, model_name=model)


def test_a_writer_sets_clears_and_imports_account_overrides(guarded):
    writer = guarded.as_role(Role.WRITER)
    writer.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    writer.clear_account_model("acme", "openai_model")
    imported = writer.import_overrides([record(1, "globex", "openai_model", "gpt-3.5-turbo")])
    assert imported.revision == 4
    resolved = writer.resolve_for_account("globex", ["openai_model"]).slots[0]
    assert (resolved.source, resolved.model.model_name) == (pb.SOURCE_ACCOUNT, "gpt-3.5-turbo")
    assert writer.resolve_for_account("acme", ["openai_model"]).slots[0].source == (
        pb.SOURCE_GLOBAL
    )


def test_a_writers_global_set_model_is_permission_denied_and_changes_nothing(guarded):
    writer = guarded.as_role(Role.WRITER)
    before = writer.get_global_settings()
    with pytest.raises(PermissionDenied) as refused:
        writer.set_global_model("openai_model", "gpt-3.5-turbo")
    assert refused.value.reason == "ROLE_INSUFFICIENT"
    assert (refused.value.metadata.get("role"), refused.value.metadata.get("required_role")) == (
        "writer", "admin")
    assert writer.get_global_settings() == before
    assert [c.revision for c in writer.iter_changes()] == [1]  # the seed only


def test_an_admin_sets_a_global_model(guarded):
    admin = guarded.as_role(Role.ADMIN)
    written = admin.set_global_model("openai_model", "gpt-3.5-turbo")
    assert written.revision == 2
    assert admin.get_global_settings().slots[0].model.model_name == "gpt-3.5-turbo"


def test_the_actor_of_a_change_is_the_token_name(guarded):
    guarded.as_role(Role.WRITER).set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    guarded.as_role(Role.ADMIN).set_global_model("anthropic_model", "claude-3-haiku-20240307")
    changes = guarded.as_role(Role.READER).list_changes(page_size=2).changes
    assert [(c.revision, c.actor, c.method) for c in changes] == [
        (3, name_of(Role.ADMIN), "SetModel"),
        (2, name_of(Role.WRITER), "SetModel"),
    ]


def test_auth_failures_are_counted_by_reason(guarded):
    before = {r: guarded.auth_failures(r)
              for r in ("TOKEN_MISSING", "TOKEN_UNKNOWN", "ROLE_INSUFFICIENT")}
    for _ in range(3):
        call(guarded.channel, "ResolveForAccount")
    for _ in range(2):
        call(guarded.channel, "ListModels", token=UNKNOWN_TOKEN)
    call(guarded.channel, "CreateModel", token=token_of(Role.WRITER))
    call(guarded.channel, "ListModels", token=token_of(Role.READER))  # allowed: not counted
    after = {r: guarded.auth_failures(r) - before[r] for r in before}
    assert after == {"TOKEN_MISSING": 3, "TOKEN_UNKNOWN": 2, "ROLE_INSUFFICIENT": 1}


def test_a_writers_refused_global_set_model_is_counted_as_role_insufficient(guarded):
    before = guarded.auth_failures("ROLE_INSUFFICIENT")
    with pytest.raises(PermissionDenied):
        guarded.as_role(Role.WRITER).set_global_model("openai_model", "gpt-3.5-turbo")
    assert guarded.auth_failures("ROLE_INSUFFICIENT") - before == 1


# -- the tokens file at start-up ---------------------------------------------------------------

_GOOD = {"name": "dashboard", "role": "reader", "token": "tok-a"}
BAD_TOKENS_FILES = {
    "not-toml": ("[[tokens]\nname = dashboard\n", "is not TOML"),
    "bad-role": (
        tokens_toml({"name": "dashboard", "role": "superuser", "token": "tok-a"}),
        "role must be one of reader, writer, admin",
    ),
    "bad-sha256": (
        tokens_toml({"name": "dashboard", "role": "reader", "sha256": "ABC123"}),
        "sha256 must be 64 lower-case hex digits",
    ),
    "duplicate-names": (
        tokens_toml(_GOOD, {**_GOOD, "token": "tok-b"}),
        "two entries have the same name 'dashboard'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS_FILES))
def test_a_tokens_file_that_cannot_be_used_stops_the_start(daemons, sqlite_url, tmp_path, case):
    text, problem = BAD_TOKENS_FILES[case]
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    daemon = daemons.spawn(sqlite_url, env={"MODELCONFIG_TOKENS_FILE": str(path)})
    code, stderr = exit_message(daemon)
    assert code == 1, daemon.describe("did not exit 1")
    assert str(path) in stderr and problem in stderr, daemon.describe(f"no {problem!r}")


def test_a_missing_tokens_file_stops_the_start(daemons, sqlite_url, tmp_path):
    path = tmp_path / "absent.toml"
    daemon = daemons.spawn(sqlite_url, env={"MODELCONFIG_TOKENS_FILE": str(path)})
    code, stderr = exit_message(daemon)
    assert code == 1, daemon.describe("did not exit 1")
    assert f"cannot read the tokens file {path}" in stderr, daemon.describe("file not named")
    assert "No such file" in stderr, daemon.describe("no reason given")


# -- client certificates -----------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


def start_mutual_tls(daemons, url: str, ca: CertificateAuthority, tokens: Path | None = None):
    server = ca.server()
    env = {
        "MODELCONFIG_TLS_CERT": str(server.cert),
        "MODELCONFIG_TLS_KEY": str(server.key),
        "MODELCONFIG_TLS_CLIENT_CA": str(ca.path),
    }
    if tokens is not None:
        env["MODELCONFIG_TOKENS_FILE"] = str(tokens)
    return daemons.start(url, env=env)


def client_with_certificate(
    daemon, ca: CertificateAuthority, common_name: str | None, token: str | None = None
) -> ModelConfigClient:
    issued = ca.client(common_name) if common_name else None
    return ModelConfigClient(
        daemon.address,
        token=token,
        root_certificates=ca.pem(),
        certificate_chain=issued.cert_pem() if issued else None,
        private_key=issued.key_pem() if issued else None,
    )


def test_without_a_tokens_file_a_client_certificates_name_is_the_admin_actor(
    daemons, sqlite_url, ca
):
    daemon = start_mutual_tls(daemons, sqlite_url, ca)
    with client_with_certificate(daemon, ca, "ops-alice") as alice:
        written = alice.set_global_model("openai_model", "gpt-3.5-turbo")  # admin only
        change = alice.list_changes(page_size=1).changes[0]
    assert (change.revision, change.actor) == (written.revision, "ops-alice")


def test_a_tokens_file_entry_grants_its_role_to_a_certificate_name(
    daemons, sqlite_url, ca, tmp_path
):
    tokens = write_tokens(
        tmp_path / "tokens.toml",
        {"name": "billing-batch", "role": "writer", "common_name": "billing.internal"},
    )
    daemon = start_mutual_tls(daemons, sqlite_url, ca, tokens)
    with client_with_certificate(daemon, ca, "billing.internal") as billing:
        written = billing.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
        change = billing.list_changes(page_size=1).changes[0]
        with pytest.raises(PermissionDenied) as refused:
            billing.set_global_model("openai_model", "gpt-3.5-turbo")
    assert (change.revision, change.actor) == (written.revision, "billing-batch")
    assert refused.value.metadata.get("role") == "writer"


def test_an_unlisted_certificate_name_without_a_token_is_token_missing(
    daemons, sqlite_url, ca, tmp_path
):
    tokens = write_tokens(
        tmp_path / "tokens.toml",
        {"name": "billing-batch", "role": "writer", "common_name": "billing.internal"},
    )
    daemon = start_mutual_tls(daemons, sqlite_url, ca, tokens)
    with (
        client_with_certificate(daemon, ca, "stranger") as stranger,
        pytest.raises(Unauthenticated) as refused,
    ):
        stranger.resolve_for_account("acme")
    assert refused.value.reason == "TOKEN_MISSING"


def test_a_client_without_a_certificate_cannot_connect(daemons, sqlite_url, ca):
    daemon = start_mutual_tls(daemons, sqlite_url, ca)
    with (
        client_with_certificate(daemon, ca, None) as anonymous,
        pytest.raises(Unavailable) as refused,
    ):
        anonymous.resolve_for_account("acme")
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE


# -- modelconfigctl ----------------------------------------------------------------------------


def ctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MODELCONFIG_")}
    return subprocess.run(
        [str(CTL), *args], capture_output=True, text=True, timeout=60, check=False,
        env={**inherited, **(env or {})},
    )


def test_ctl_tokens_new_prints_a_token_and_an_entry_that_authenticate_it(
    daemons, sqlite_url, tmp_path
):
    made = ctl("tokens", "new", "--name", "billing-batch", "--role", "writer")
    assert made.returncode == 0, made
    head, _, entry = made.stdout.partition("[[tokens]]")
    words = [line for line in head.splitlines() if line.strip() and " " not in line.strip()]
    assert len(words) == 1, made.stdout  # the token, on a line of its own
    token = words[0].strip()
    assert token not in entry
    path = tmp_path / "tokens.toml"
    path.write_text("[[tokens]]" + entry)
    daemon = daemons.start(sqlite_url, env={"MODELCONFIG_TOKENS_FILE": str(path)})

    with ModelConfigClient(daemon.address, token=token) as billing:
        written = billing.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
        actor = billing.list_changes(page_size=1).changes[0].actor
        with pytest.raises(PermissionDenied) as refused:
            billing.set_global_model("openai_model", "gpt-3.5-turbo")
    assert (written.revision, actor) == (2, "billing-batch")
    assert refused.value.metadata.get("role") == "writer"


def test_ctl_sends_its_token_flag(guarded):
    done = ctl("--target", guarded.address, "--token", token_of(Role.WRITER),
               "set", "openai_model", "gpt-3.5-turbo", "--account", "acme")
    assert done.returncode == 0, done
    change = guarded.as_role(Role.READER).list_changes(page_size=1).changes[0]
    assert (change.revision, change.actor) == (2, name_of(Role.WRITER))


def test_ctl_sends_the_modelconfig_token_variable(guarded):
    done = ctl("--target", guarded.address,
               "set", "openai_model", "gpt-3.5-turbo", "--account", "acme",
               env={"MODELCONFIG_TOKEN": token_of(Role.WRITER)})
    assert done.returncode == 0, done
    change = guarded.as_role(Role.READER).list_changes(page_size=1).changes[0]
    assert (change.revision, change.actor) == (2, name_of(Role.WRITER))


def test_ctl_without_a_token_is_refused_with_token_missing(guarded):
    done = ctl("--target", guarded.address, "resolve", "acme")
    assert done.returncode == 7, done
    assert "UNAUTHENTICATED TOKEN_MISSING" in done.stderr, done
