"""`bmad new`: every template scaffolds a project that passes `bmad check`; --list, --set, --name,
and refusals (unknown template, non-empty folder, bad values) without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bmad.cli.scaffold import list_templates
from bmad.compiler.compile import compile_file

TEMPLATES = [t.name for t in list_templates()]


def bmad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env={**os.environ, "BMAD_HOME": str(cwd / ".home")})


def test_one_template_per_pattern():
    assert len(TEMPLATES) == 12
    assert {"code-review", "architecture-design", "knowledge-synthesis"} <= set(TEMPLATES)


def test_list_names_every_template(tmp_path):
    proc = bmad("new", "--list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in TEMPLATES:
        assert name in proc.stdout
    assert not list(tmp_path.iterdir()) or [p.name for p in tmp_path.iterdir()] == [".home"]


def test_scaffold_writes_the_project_and_it_passes_check(tmp_path):
    proc = bmad("new", "--template", "code-review", "review", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "review"
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "bmad.toml", "models.bmad", "workflow.bmad"]
    workflow = (project / "workflow.bmad").read_text()
    assert "use std.code_review" in workflow and 'import "models.bmad"' in workflow
    assert "task result = code_review(diff: diff" in workflow
    config = tomllib.loads((project / "bmad.toml").read_text())
    assert config["providers"]["openai"] == {"api_key_env": "OPENAI_API_KEY"}
    assert "bmad run workflow.bmad --provider sim --input diff=@diff.txt" in (project / "README.md").read_text()
    checked = bmad("check", "workflow.bmad", cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no problems" in checked.stderr
    formatted = bmad("fmt", "--check", "workflow.bmad", "models.bmad", cwd=project)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    (project / "diff.txt").write_text("- return a - b\n+ return a + b\n")
    run = bmad("run", "workflow.bmad", "--provider", "sim", "--sim-latency-scale", "0",
               "--input", "diff=@diff.txt", "--journal", str(tmp_path / "runs.db"), cwd=project)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_compiles_without_problems(template, tmp_path):
    from bmad.cli.scaffold import scaffold

    scaffold(template, tmp_path / template)
    result = compile_file(tmp_path / template / "workflow.bmad")
    assert result.ok
    assert [f"{d.code} {d.message}" for d in result.diagnostics] == []
    from bmad.compiler.passes import check_plan

    assert [f"{d.code} {d.message}" for d in check_plan(result.program)] == []


def test_set_name_and_budget_customise_the_workflow(tmp_path):
    proc = bmad("new", "-t", "knowledge_synthesis", "--set", 'sources=["a", "b"]', "--set",
                "question=Is it fast?", "--name", "lit_review", "--budget", "$2.5", "lit", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "lit" / "workflow.bmad").read_text()
    assert 'input sources: list<text> = ["a", "b"]' in text
    assert 'input question: text = "Is it fast?"' in text
    assert "workflow lit_review {" in text and "budget $2.50 per run" in text
    result = compile_file(tmp_path / "lit" / "workflow.bmad")
    assert result.ok and not result.diagnostics


@pytest.mark.parametrize("args, message", [
    (("new", "--template", "code-reveiw", "x"), "did you mean `code-review`"),
    (("new", "x"), "name a template"),
    (("new", "-t", "code-review", "--set", "nope=1", "x"), "has no input `nope`"),
    (("new", "-t", "code-review", "--set", "novalue", "x"), "expected INPUT=VALUE"),
    (("new", "-t", "code-review", "--name", "code_review", "x"), "can't name the workflow"),
    (("new", "-t", "code-review", "--budget", "lots", "x"), "expected an amount"),
])
def test_refusals_are_plain_errors(tmp_path, args, message):
    proc = bmad(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_a_non_empty_folder_is_refused_unless_forced(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("mine")
    refused = bmad("new", "-t", "code-review", "p", cwd=tmp_path)
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert not (tmp_path / "p" / "workflow.bmad").exists()
    forced = bmad("new", "-t", "code-review", "p", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and (tmp_path / "p" / "notes.txt").read_text() == "mine"
