"""Installing bmad for real: a wheel in a fresh venv, and an editable install in another.

Each venv is plain (no --system-site-packages): pip pulls the dependencies from the package
registry, so a dependency missing from pyproject.toml or a data file missing from the package
shows up here. Commands run from a folder outside the checkout, so nothing is imported from it by
accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]

IMPORTS = "import bmad.compiler.ir, bmad.runtime, bmad.lsp, bmad.stdlib, bmad.cli.main"
PACKAGE_DATA = """
from importlib import resources
for package, name in [("bmad.grammar", "bmad.lark"), ("bmad.stdlib", "models.bmad"),
                      ("bmad.compiler.schema", "ir.v1.json")]:
    assert resources.files(package).joinpath(name).is_file(), f"{package}/{name} is not installed"
print("package data ok")
"""


def run(*args: str | Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            env=env, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def fresh_venv(path: Path) -> tuple[Path, Path]:
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(path)
    return path / "bin" / "python", path / "bin" / "bmad"


def check_installation(python: Path, bmad: Path, workdir: Path) -> str:
    version = run(bmad, "--version", cwd=workdir).stdout.strip()
    assert version.startswith("bmad "), version
    run(python, "-c", IMPORTS, cwd=workdir)
    assert "package data ok" in run(python, "-c", PACKAGE_DATA, cwd=workdir).stdout
    where = run(python, "-c", "import bmad; print(bmad.__file__)", cwd=workdir).stdout.strip()
    return where


def test_wheel_installs_into_a_fresh_venv(tmp_path: Path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, REPO_ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("bmad-*.whl")
    python, bmad = fresh_venv(tmp_path / "venv")
    run(python, "-m", "pip", "install", wheel, cwd=tmp_path)
    where = check_installation(python, bmad, tmp_path)
    assert str(tmp_path / "venv") in where  # imported from the installed wheel, not the checkout
    schema = run(bmad, "schema", "ir", cwd=tmp_path).stdout
    assert schema == (REPO_ROOT / "compiler" / "schema" / "ir.v1.json").read_text()


def test_editable_install_into_a_fresh_venv(tmp_path: Path):
    python, bmad = fresh_venv(tmp_path / "venv")
    run(python, "-m", "pip", "install", "-e", REPO_ROOT, cwd=tmp_path)
    where = check_installation(python, bmad, tmp_path)
    assert Path(where).resolve().parent == REPO_ROOT  # the checkout itself is imported
