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
    ],
)
def test_bad_environment_values_are_refused_like_bad_flags(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_:
        config.parse([])
    assert exit_.value.code == 2
