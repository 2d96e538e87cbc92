"""Serving open only on loopback: a real process on 0.0.0.0 without TLS and authentication is
refused at start with a message saying what to configure, unless --insecure; loopback serves
open without complaint. The engine plays no part, so these run over SQLite only.
"""

from __future__ import annotations

import socket

import pytest

from modelconfig import ModelConfigClient, Unauthenticated

from .certs import CertificateAuthority, write_tokens
from .secure_helpers import exit_message, spawn_with_args

ANY = "0.0.0.0:0"
TOKEN = "tok-exposure-3b4c5d6e7f"


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/modelconfig.db"


@pytest.fixture
def tokens(tmp_path) -> str:
    path = write_tokens(tmp_path / "tokens.toml",
                        {"name": "edge-proxy", "role": "writer", "token": TOKEN})
    return str(path)


def writes_open(target: str) -> bool:
    """Whether a caller with no credentials at all may change an account's model."""
    with ModelConfigClient(target) as anyone:
        written = anyone.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
        return written.revision == 2


# -- refused -----------------------------------------------------------------------------------


def test_any_address_without_tls_or_tokens_is_refused_naming_what_to_configure(
    daemons, sqlite_url
):
    daemon = daemons.spawn(sqlite_url, listen=ANY)
    code, stderr = exit_message(daemon)
    assert code == 1, daemon.describe("served open on every address")
    for needed in (ANY, "TLS (MODELCONFIG_TLS_CERT, MODELCONFIG_TLS_KEY)",
                   "authentication (MODELCONFIG_TOKENS_FILE", "--insecure"):
        assert needed in stderr, daemon.describe(f"the refusal does not name {needed!r}")


def test_any_address_with_only_a_tokens_file_is_refused_for_want_of_tls(
    daemons, sqlite_url, tokens
):
    daemon = daemons.spawn(sqlite_url, listen=ANY, env={"MODELCONFIG_TOKENS_FILE": tokens})
    code, stderr = exit_message(daemon)
    assert code == 1, daemon.describe("served tokens in clear text on every address")
    assert "without TLS (MODELCONFIG_TLS_CERT, MODELCONFIG_TLS_KEY)" in stderr, daemon.describe(
        "the refusal does not say TLS is missing")
    assert "authentication (" not in stderr, daemon.describe("asks for what is configured")
    assert "--insecure" in stderr, daemon.describe("the refusal does not name --insecure")


def test_any_address_with_tls_but_no_authentication_is_refused(daemons, sqlite_url, tmp_path):
    server = CertificateAuthority(tmp_path / "pki").server()
    daemon = daemons.spawn(sqlite_url, listen=ANY, env={
        "MODELCONFIG_TLS_CERT": str(server.cert), "MODELCONFIG_TLS_KEY": str(server.key)})
    code, stderr = exit_message(daemon)
    assert code == 1, daemon.describe("served open (TLS alone) on every address")
    assert "without authentication (MODELCONFIG_TOKENS_FILE" in stderr, daemon.describe(
        "the refusal does not say authentication is missing")


# -- served ------------------------------------------------------------------------------------


def test_any_address_with_tls_and_a_tokens_file_serves(daemons, sqlite_url, tokens, tmp_path):
    ca = CertificateAuthority(tmp_path / "pki")
    server = ca.server()
    daemon = daemons.start(sqlite_url, listen=ANY, env={
        "MODELCONFIG_TLS_CERT": str(server.cert), "MODELCONFIG_TLS_KEY": str(server.key),
        "MODELCONFIG_TOKENS_FILE": tokens})
    with ModelConfigClient(daemon.address, root_certificates=ca.pem(), token=TOKEN) as client:
        written = client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    assert written.revision == 2
    with (
        ModelConfigClient(daemon.address, root_certificates=ca.pem()) as anonymous,
        pytest.raises(Unauthenticated) as refused,
    ):
        anonymous.resolve_for_account("acme")
    assert refused.value.reason == "TOKEN_MISSING"


def test_insecure_variable_serves_any_address_open_and_warns(daemons, sqlite_url):
    daemon = daemons.start(sqlite_url, listen=ANY, env={"MODELCONFIG_INSECURE": "1"})
    assert writes_open(daemon.address)
    warnings = [line for line in daemon.stderr().splitlines() if "WARNING" in line]
    assert any("INSECURE" in line for line in warnings), daemon.describe("no loud warning")


def test_insecure_flag_serves_any_address_open_and_warns(daemons, sqlite_url):
    daemon = spawn_with_args(daemons, sqlite_url, ["--insecure"], listen=ANY).wait_serving()
    assert writes_open(daemon.address)
    warnings = [line for line in daemon.stderr().splitlines() if "WARNING" in line]
    assert any("INSECURE" in line for line in warnings), daemon.describe("no loud warning")


def _ipv6_loopback_problem() -> str | None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        return f"this machine cannot bind the IPv6 loopback ::1: {exc}"
    return None


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost"])
def test_loopback_serves_open_without_complaint(daemons, sqlite_url, host):
    if host == "[::1]" and (problem := _ipv6_loopback_problem()):
        pytest.skip(problem)
    daemon = daemons.start(sqlite_url, listen=f"{host}:0")
    assert writes_open(f"{host}:{daemon.port}")
    stderr = daemon.stderr()
    assert "INSECURE" not in stderr and "WARNING" not in stderr, daemon.describe("complained")
