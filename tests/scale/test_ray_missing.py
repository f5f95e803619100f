"""Without Ray installed, `--executor ray` is refused with a clear message (exit 2), never a
traceback. "Not installed" is simulated by a `ray` package on PYTHONPATH whose import fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = """
provider lab { kind sim }
model quick {
  provider lab
  price input $1 output $2 per 1M
}
workflow hello {
  input name: text = "world"
  task greet {
    model quick
    prompt "Greet {{ name }}."
  }
  output greet
}
"""


@pytest.fixture
def without_ray(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("No module named \'ray\'")\n')
    path = os.pathsep.join([str(tmp_path / "shim"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "BMAD_HOME": str(tmp_path / "home")}


@pytest.mark.parametrize("batch", [False, True], ids=["one run", "batch"])
def test_executor_ray_without_ray_says_how_to_install_it(tmp_path: Path, without_ray, batch):
    (tmp_path / "hello.bmad").write_text(WORKFLOW, encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text(json.dumps({"name": "bees"}) + "\n", encoding="utf-8")
    extra = ["--inputs", "rows.jsonl"] if batch else []
    result = subprocess.run([sys.executable, "-m", "bmad", "run", "hello.bmad", "--provider", "sim",
                             "--executor", "ray", "--journal", "runs.db", *extra],
                            cwd=tmp_path, env=without_ray, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert "BMAD-E324" in result.stderr and "needs Ray" in result.stderr
    assert "pip install 'bmad[ray]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_executor_is_refused(tmp_path: Path):
    (tmp_path / "hello.bmad").write_text(WORKFLOW, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bmad", "run", "hello.bmad", "--provider", "sim",
                             "--executor", "dask", "--journal", "runs.db"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "BMAD_HOME": str(tmp_path / "home")})
    assert result.returncode == 2 and "BMAD-E326" in result.stderr
    assert "Traceback" not in result.stderr
