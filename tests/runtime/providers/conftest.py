"""Fixtures for the provider tests: the fault-injecting server on 127.0.0.1, and provider builders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:  # `tests.servers` is imported as a package from the repo root
    sys.path.insert(0, str(REPO_ROOT))

from tests.servers.fault_server import FaultServer  # noqa: E402

PLANTED_KEY = "sk-bmadtest-PLANTED-0123456789abcdef"


@pytest.fixture(scope="module")
def fault_server():
    with FaultServer(slow_s=3.0) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_server():
    with FaultServer(expected_key=PLANTED_KEY, slow_s=3.0) as server:
        yield server
