"""Every conformance scenario, played by every client's runner against a fresh seeded daemon."""

from __future__ import annotations

import pytest

from tests.conftest import start_daemon

from . import go_runner, grpcurl_runner, node_runner, runner

RUNNERS = {
    "python": runner.run,
    "grpcurl": grpcurl_runner.run,
    "node": node_runner.run,
    "go": go_runner.run,
}


@pytest.fixture
def fresh_daemon(tmp_path):
    daemon = start_daemon(f"sqlite:///{tmp_path}/conformance.db")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.mark.parametrize("language", sorted(RUNNERS))
@pytest.mark.parametrize("scenario", runner.scenarios(), ids=lambda p: p.stem)
def test_scenario(fresh_daemon, language, scenario):
    failures = RUNNERS[language](fresh_daemon.address, scenario)
    assert not failures, "\n".join(failures)


def test_the_scenarios_cover_every_rpc():
    called = {step["call"] for path in runner.scenarios() for step in runner.load(path)["steps"]}
    # Whole configurations are too large for a scenario file: tests/e2e/test_configuration.py.
    missing = set(runner.SERVICE.methods_by_name) - called - {
        "ExportConfiguration",
        "ApplyConfiguration",
    }
    assert not missing, f"RPCs no scenario calls: {sorted(missing)}"
