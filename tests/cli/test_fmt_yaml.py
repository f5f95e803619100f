"""`bmad fmt` formats .bmad files only: a YAML file named on the command line is a usage error, and
YAML files in a folder are skipped with a note."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SEED = "id: doc\nname: Doc\ntasks:\n  - id: a\n    name: A\n"
UNFORMATTED = 'workflow w {\n task a { prompt "x" }\n output a\n}\n'


def bmad(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "NO_COLOR": "", "COLUMNS": "100"}
    environment.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True,
                          cwd=cwd, env=environment, timeout=120)


def test_a_yaml_file_named_directly_is_a_usage_error_not_a_syntax_error(tmp_path: Path):
    seed = tmp_path / "seed_doc.yaml"
    seed.write_text(SEED)
    assert bmad("check", str(seed)).returncode == 0
    result = bmad("fmt", str(seed))
    assert result.returncode == 2, result.stderr
    assert "formats .bmad files only" in result.stderr
    assert "BMAD-E034" not in result.stderr and "Traceback" not in result.stderr
    assert seed.read_text() == SEED


def test_a_yaml_file_named_with_bmad_files_formats_nothing(tmp_path: Path):
    (tmp_path / "flow.yml").write_text(SEED)
    flow = tmp_path / "flow.bmad"
    flow.write_text(UNFORMATTED)
    result = bmad("fmt", str(flow), str(tmp_path / "flow.yml"))
    assert result.returncode == 2
    assert flow.read_text() == UNFORMATTED


def test_yaml_files_in_a_folder_are_skipped_with_a_note(tmp_path: Path):
    (tmp_path / "seed_doc.yaml").write_text(SEED)
    flow = tmp_path / "flow.bmad"
    flow.write_text(UNFORMATTED)
    result = bmad("fmt", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "skipped 1 YAML file (fmt formats .bmad files only)" in result.stderr
    assert "seed_doc.yaml" in result.stderr
    assert "error" not in result.stderr
    assert flow.read_text() != UNFORMATTED  # the .bmad file is still formatted
    assert (tmp_path / "seed_doc.yaml").read_text() == SEED


def test_check_on_a_folder_with_only_yaml_exits_cleanly(tmp_path: Path):
    (tmp_path / "seed_doc.yaml").write_text(SEED)
    result = bmad("fmt", "--check", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "skipped 1 YAML file" in result.stderr
