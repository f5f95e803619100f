"""Shared fixtures: where the contract examples live, and JSON snapshots.

The contract examples are in `shared/spec/` beside the repository (CI clones the repository with
`shared/` next to it), so they are found relative to this file, never by an absolute path.

- `repo_root`, `spec_dir`, `examples_dir`: paths.
- `snapshot_json`: a syrupy snapshot stored as a JSON file (sorted keys) in `__snapshots__/`.
- Parametrising by name: a test that takes `spec_file` runs once per contract file
  (`shared/spec/*.bmad` and `*.yaml`); one that takes `bad_spec_file` runs once per file in
  `shared/spec/bad/`; `example_file` runs once per file in `examples/`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

REPO_ROOT = Path(__file__).resolve().parents[1]

# The `similarity` consensus uses n-grams in the default suite (also in CLI subprocesses, which
# inherit this): loading the optional embedding model takes seconds. Its tests opt back in.
os.environ.setdefault("BMAD_SIMILARITY", "ngram")
SPEC_DIR = (REPO_ROOT / ".." / "shared" / "spec").resolve()
EXAMPLES_DIR = REPO_ROOT / "examples"

WORKFLOW_SUFFIXES = (".bmad", ".yaml", ".yml")


def _workflow_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in WORKFLOW_SUFFIXES and p.is_file())


def spec_files() -> list[Path]:
    return _workflow_files(SPEC_DIR)


def bad_spec_files() -> list[Path]:
    return _workflow_files(SPEC_DIR / "bad")


def example_files() -> list[Path]:
    return _workflow_files(EXAMPLES_DIR)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for argument, files in (("spec_file", spec_files), ("bad_spec_file", bad_spec_files),
                            ("example_file", example_files)):
        if argument in metafunc.fixturenames:
            found = files()
            if argument != "example_file" and not found:
                raise pytest.UsageError(f"no contract files found in {SPEC_DIR}: the shared/ folder "
                                        "must sit beside the repository")
            metafunc.parametrize(argument, found, ids=[p.name for p in found])


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    if not SPEC_DIR.is_dir():
        pytest.fail(f"the contract examples are missing: expected {SPEC_DIR} (shared/ beside the repo)")
    return SPEC_DIR


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES_DIR


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)
