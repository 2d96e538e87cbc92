"""TLS with generated certificates on real processes, and SIGHUP rotation of certificates and
tokens (single process and --workers 2).

The engine plays no part in any of this, so these run over SQLite only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from modelconfig import ModelConfigClient, ModelConfigError, Unavailable

from .certs import (
    CertificateAuthority,
    Issued,
    peer_certificate_serial,
    write_atomically,
    write_tokens,
)
from .process_helpers import daemon_command
from .secure_helpers import exit_message, wait_for

CTL = Path(sys.executable).with_name("modelconfigctl")
TOKEN_A, TOKEN_B = "tok-alpha-1f2e3d4c5b", "tok-bravo-6a7b8c9d0e"
ALPHA = {"name": "alpha", "role": "writer", "token": TOKEN_A}
BRAVO = {"name": "bravo", "role": "writer", "token": TOKEN_B}


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/modelconfig.db"


@pytest.fixture
def ca(tmp_path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


def tls_env(server: Issued, **extra: str) -> dict[str, str]:
    return {"MODELCONFIG_TLS_CERT": str(server.cert), "MODELCONFIG_TLS_KEY": str(server.key),
            **extra}


def tls_client(daemon, ca: CertificateAuthority, token: str | None = None) -> ModelConfigClient:
    return ModelConfigClient(daemon.address, root_certificates=ca.pem(), token=token)


def outcome(client: ModelConfigClient) -> str:
    """"ok" if the client may resolve, else its refusal's reason (or status code)."""
    try:
        client.resolve_for_account("acme")
    except ModelConfigError as error:
        return error.reason or error.code.name
    return "ok"


# -- serving TLS -------------------------------------------------------------------------------


def test_a_client_with_the_ca_resolves_over_tls(daemons, sqlite_url, ca):
    daemon = daemons.start(sqlite_url, env=tls_env(ca.server()))
    with tls_client(daemon, ca) as client:
        reply = client.resolve_for_account("acme", ["openai_model"])
    assert reply.slots[0].model.model_name == "gpt-4o-mini"


def test_a_plaintext_client_cannot_call_a_tls_daemon(daemons, sqlite_url, ca):
    daemon = daemons.start(sqlite_url, env=tls_env(ca.server()))
    with ModelConfigClient(daemon.address) as plaintext, pytest.raises(Unavailable) as failed:
        plaintext.resolve_for_account("acme")
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE


def test_ctl_with_cacert_and_token_writes_over_tls(daemons, sqlite_url, ca, tmp_path):
    tokens = write_tokens(tmp_path / "tokens.toml", ALPHA)
    daemon = daemons.start(
        sqlite_url, env=tls_env(ca.server(), MODELCONFIG_TOKENS_FILE=str(tokens))
    )
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MODELCONFIG_")}
    done = subprocess.run(
        [str(CTL), "--target", daemon.address, "--cacert", str(ca.path), "--token", TOKEN_A,
         "set", "openai_model", "gpt-3.5-turbo", "--account", "acme"],
        capture_output=True, text=True, timeout=60, check=False, env=inherited,
    )
    assert done.returncode == 0, done
    assert "set openai_model = gpt-3.5-turbo (account acme)" in done.stdout
    with tls_client(daemon, ca, TOKEN_A) as client:
        change = client.list_changes(page_size=1).changes[0]
    assert (change.revision, change.actor) == (2, "alpha")


# -- files that cannot be used -----------------------------------------------------------------


def test_a_key_that_is_not_the_certificates_stops_the_start(daemons, sqlite_url, ca):
    server, other = ca.server(), ca.server("other")
    daemon = daemons.spawn(sqlite_url, env={
        "MODELCONFIG_TLS_CERT": str(server.cert), "MODELCONFIG_TLS_KEY": str(other.key)})
    code, stderr = exit_message(daemon)
    assert code == 1, daemon.describe("did not exit 1")
    assert str(server.cert) in stderr and str(other.key) in stderr, daemon.describe("unnamed")


@pytest.mark.parametrize("missing", ["cert", "key", "client_ca"])
def test_a_missing_tls_file_stops_the_start(daemons, sqlite_url, ca, tmp_path, missing):
    server = ca.server()
    files = {"cert": str(server.cert), "key": str(server.key), "client_ca": str(ca.path)}
    files[missing] = str(tmp_path / f"absent-{missing}.pem")
    daemon = daemons.spawn(sqlite_url, env={
        "MODELCONFIG_TLS_CERT": files["cert"], "MODELCONFIG_TLS_KEY": files["key"],
        "MODELCONFIG_TLS_CLIENT_CA": files["client_ca"]})
    code, stderr = exit_message(daemon)
    assert code == 1, daemon.describe("did not exit 1")
    assert files[missing] in stderr, daemon.describe("the missing file is not named")
    assert "No such file" in stderr, daemon.describe("no reason given")


def test_tls_cert_without_tls_key_is_a_usage_error(sqlite_url, ca):
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MODELCONFIG_")}
    done = subprocess.run(
        [*daemon_command(), "--listen", "127.0.0.1:0", "--database-url", sqlite_url,
         "--tls-cert", str(ca.server().cert)],
        capture_output=True, text=True, timeout=60, check=False, env=inherited,
    )
    assert done.returncode == 2, done
    assert "--tls-key" in done.stderr, done


# -- SIGHUP: certificates ----------------------------------------------------------------------


def replace_certificate(target: Issued, replacement: Issued) -> None:
    """Put the replacement's certificate and key where the daemon reads `target`'s."""
    write_atomically(target.key, replacement.key_pem())
    write_atomically(target.cert, replacement.cert_pem())


def test_sighup_serves_a_new_certificate_to_new_connections(daemons, sqlite_url, ca):
    server = ca.server()
    daemon = daemons.start(sqlite_url, env=tls_env(server))
    assert peer_certificate_serial(daemon.port, ca.path) == server.serial
    before = tls_client(daemon, ca)  # connected before the rotation
    assert outcome(before) == "ok"
    fresh = ca.server("fresh")
    assert fresh.serial != server.serial

    replace_certificate(server, fresh)
    daemon.proc.send_signal(signal.SIGHUP)

    rotated = wait_for(lambda: peer_certificate_serial(daemon.port, ca.path) == fresh.serial)
    assert rotated, daemon.describe("new connections still get the old certificate")
    assert outcome(before) == "ok"
    with tls_client(daemon, ca) as after:
        assert outcome(after) == "ok"  # and the new certificate verifies with the CA
    assert daemon.proc.poll() is None
    before.close()


def test_a_broken_certificate_on_sighup_keeps_the_old_one_and_logs_why(
    daemons, sqlite_url, ca
):
    server = ca.server()
    daemon = daemons.start(sqlite_url, env=tls_env(server))
    write_atomically(server.cert, b"-----BEGIN CERTIFICATE-----\nbroken\n")

    daemon.proc.send_signal(signal.SIGHUP)

    assert wait_for(lambda: "TLS files not reloaded" in daemon.stderr()), daemon.describe(
        "the failed reload was not logged")
    assert str(server.cert) in daemon.stderr(), daemon.describe("the file is not named")
    assert peer_certificate_serial(daemon.port, ca.path) == server.serial
    with tls_client(daemon, ca) as client:
        assert outcome(client) == "ok"


# -- SIGHUP: tokens ----------------------------------------------------------------------------


def test_sighup_reloads_the_tokens_file(daemons, sqlite_url, tmp_path):
    tokens = write_tokens(tmp_path / "tokens.toml", ALPHA)
    daemon = daemons.start(sqlite_url, env={"MODELCONFIG_TOKENS_FILE": str(tokens)})
    channel = daemon.channel()
    alpha = ModelConfigClient(channel=channel, token=TOKEN_A)
    bravo = ModelConfigClient(channel=channel, token=TOKEN_B)
    assert (outcome(alpha), outcome(bravo)) == ("ok", "TOKEN_UNKNOWN")

    write_tokens(tokens, BRAVO)
    daemon.proc.send_signal(signal.SIGHUP)

    rotated = wait_for(lambda: (outcome(alpha), outcome(bravo)) == ("TOKEN_UNKNOWN", "ok"))
    assert rotated, daemon.describe(f"after SIGHUP: {outcome(alpha)}, {outcome(bravo)}")


def test_a_tokens_file_that_no_longer_parses_keeps_the_previous_tokens(
    daemons, sqlite_url, tmp_path
):
    tokens = write_tokens(tmp_path / "tokens.toml", ALPHA)
    daemon = daemons.start(sqlite_url, env={"MODELCONFIG_TOKENS_FILE": str(tokens)})
    write_atomically(tokens, b"[[tokens]\nname = alpha\n")

    daemon.proc.send_signal(signal.SIGHUP)

    assert wait_for(lambda: "tokens file not reloaded" in daemon.stderr()), daemon.describe(
        "the failed reload was not logged")
    assert "is not TOML" in daemon.stderr(), daemon.describe("the log does not say why")
    with ModelConfigClient(daemon.address, token=TOKEN_A) as alpha:
        assert outcome(alpha) == "ok"


def test_sighup_to_the_supervisor_reloads_the_tokens_of_every_worker(
    daemons, sqlite_url, tmp_path
):
    tokens = write_tokens(tmp_path / "tokens.toml", ALPHA)
    supervisor = daemons.start(sqlite_url, env={
        "MODELCONFIG_WORKERS": "2", "MODELCONFIG_TOKENS_FILE": str(tokens)})
    # 16 distinct connections, which the kernel spreads over the workers (all 16 on one of
    # two workers has odds 1 in 32768); each carries a client of either token.
    channels = [grpc.insecure_channel(supervisor.address, options=[("test.conn", i)])
                for i in range(16)]
    try:
        pairs = [(ModelConfigClient(channel=c, token=TOKEN_A),
                  ModelConfigClient(channel=c, token=TOKEN_B)) for c in channels]

        def outcomes() -> set[tuple[str, str]]:
            return {(outcome(a), outcome(b)) for a, b in pairs}

        assert outcomes() == {("ok", "TOKEN_UNKNOWN")}
        write_tokens(tokens, BRAVO)
        supervisor.proc.send_signal(signal.SIGHUP)
        rotated = wait_for(lambda: outcomes() == {("TOKEN_UNKNOWN", "ok")})
        assert rotated, supervisor.describe(f"after SIGHUP: {outcomes()}")
    finally:
        for channel in channels:
            channel.close()
