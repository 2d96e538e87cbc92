"""Settings come from MODELCONFIG_* variables, which flags override; both are checked alike."""

import pytest

from modelconfigd import config


def test_defaults():
    assert config.parse([]) == config.Settings()


def test_environment_then_flags(monkeypatch):
    monkeypatch.setenv("MODELCONFIG_LISTEN", "127.0.0.1:6000")
    monkeypatch.setenv("MODELCONFIG_POLL_INTERVAL", "0.25")
    monkeypatch.setenv("MODELCONFIG_LOG_LEVEL", "debug")
    settings = config.parse(["--listen", "127.0.0.1:7000"])
    assert (settings.listen, settings.poll_interval, settings.log_level) == (
        "127.0.0.1:7000",
        0.25,
        "DEBUG",
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MODELCONFIG_POLL_INTERVAL", "0"),
        ("MODELCONFIG_WORKERS", "0"),
        ("MODELCONFIG_THREADS", "many"),
        ("MODELCONFIG_LOG_LEVEL", "loud"),  # logging would raise at start-up
        ("MODELCONFIG_DRAIN_SECONDS", "-1"),  # time.sleep would raise at SIGTERM
        ("MODELCONFIG_GRACE_SECONDS", "nan"),
        ("MODELCONFIG_POLL_INTERVAL", "inf"),  # the poll's wait would overflow
    ],
)
def test_bad_environment_values_are_refused_like_bad_flags(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_:
        config.parse([])
    assert exit_.value.code == 2


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("localhost", "no port"),  # grpc would serve on 443
        ("56058", "no host: use HOST:PORT, e.g. 127.0.0.1:56058"),
        ("127.0.0.1:99999", "port '99999' is not a number from 1 to 65535"),  # grpc: any port
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("127.0.0.1:-1", "port '-1' is not a number"),
        ("127.0.0.1:", "no port"),
        (":50051", "no host"),
        ("", "empty"),
        ("::1:50051", "an IPv6 address goes in brackets, e.g. [::1]:50051"),
        ("::1", "an IPv6 address goes in brackets"),
        ("[::1]", "use [IPV6]:PORT"),
        ("[::1]:70000", "port '70000' is not a number"),
        ("[127.0.0.1]:50051", "'127.0.0.1' in brackets is not an IPv6 address"),
    ],
)
@pytest.mark.parametrize("source", ["variable", "flag"])
def test_bad_listen_addresses_are_refused_saying_what_is_wrong(
    monkeypatch, capsys, source, listen, says
):
    if source == "variable":
        monkeypatch.setenv("MODELCONFIG_LISTEN", listen)
    argv = ["--listen", listen] if source == "flag" else []
    with pytest.raises(SystemExit) as exit_:
        config.parse(argv)
    assert exit_.value.code == 2
    assert f"{listen!r}: {says}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:50051", "[::1]:50051", "localhost:50051", "0.0.0.0:0"]
)
def test_good_listen_addresses_are_taken_as_given(monkeypatch, listen):
    monkeypatch.setenv("MODELCONFIG_LISTEN", listen)
    assert config.parse([]).listen == listen
    assert config.parse(["--listen", listen]).listen == listen


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tls-cert", "c.pem"], "go together"),
        (["--tls-key", "k.pem"], "go together"),
        (["--tls-client-ca", "ca.pem"], "client certificates need TLS"),
        (["--log-format", "xml"], "not a log format"),
        (["--insecure", "maybe"], "not a yes/no value"),
    ],
)
def test_security_options_that_cannot_work_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        config.parse(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_insecure_is_a_flag_or_a_variable(monkeypatch):
    assert config.parse(["--insecure"]).insecure is True
    assert config.parse([]).insecure is False
    monkeypatch.setenv("MODELCONFIG_INSECURE", "1")
    assert config.parse([]).insecure is True


@pytest.mark.parametrize(
    ("text", "revisions", "seconds"),
    [("100000", 100000, 0.0), ("1", 1, 0.0), ("30s", 0, 30.0), ("15m", 0, 900.0),
     ("12h", 0, 43200.0), ("7d", 0, 604800.0), (" 7D ", 0, 604800.0)],
)
def test_changes_keep_is_revisions_or_a_duration(text, revisions, seconds):
    policy = config.keep_policy(text)
    assert (policy.revisions, policy.seconds) == (revisions, seconds)


@pytest.mark.parametrize("text", ["", "0", "-5", "7w", "1.5d", "d", "ten", "0s"])
def test_a_changes_keep_that_is_neither_is_refused(monkeypatch, text, capsys):
    monkeypatch.setenv("MODELCONFIG_CHANGES_KEEP", text)
    with pytest.raises(SystemExit):
        config.parse([])
    assert "neither a number of revisions" in capsys.readouterr().err


def test_the_audit_trail_keeps_everything_unless_told(monkeypatch):
    assert config.parse([]).audit_keep == ""
    monkeypatch.setenv("MODELCONFIG_AUDIT_KEEP", "90d")
    assert config.keep_policy(config.parse([]).audit_keep).seconds == 90 * 86400
