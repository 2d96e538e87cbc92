"""Fixtures for tests that run the daemon as a real process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .process_helpers import Daemons


@pytest.fixture
def daemons(tmp_path) -> Iterator[Daemons]:
    started = Daemons(tmp_path)
    try:
        yield started
    finally:
        started.close()
