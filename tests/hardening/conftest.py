"""Fixtures of the hardening tests: the repository root on sys.path (so the other suites' servers,
strategies and LSP client can be reused rather than copied), the runtime helpers, and a clean
working directory with no stray bmad.toml."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
for entry in (REPO_ROOT, REPO_ROOT / "tests" / "runtime"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

PLANTED_KEY = "sk-bmadtest-PLANTED-0123456789abcdef"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path as the working directory, with bmad.toml read from there only."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BMAD_CONFIG", raising=False)
    monkeypatch.delenv("BMAD_HOME", raising=False)
    return tmp_path
