"""A plan's hash doesn't depend on where the project lies: the same files copied elsewhere (or
planned from another working directory) plan to the same hash, so a sealed plan and
`--resume RUN FILE` keep working after a move. Hashes made over absolute paths, before, still
verify."""

from __future__ import annotations

import shutil

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import make_context, plan_hash_matches, plan_program, verify_plan
from bmad.compiler.passes.seal_plan import compute_plan_hash, legacy_plan_hash

MODELS = """
provider rec { kind replay data "recorded/answers.jsonl" }
model answerer { provider rec price input $1 output $2 per 1M skills { writing 0.8 } }
"""
MAIN = """
import "catalog/models.bmad"
workflow summarise {
  task brief { prompt "Summarise bees" model answerer max_tokens 50 }
  output brief
}
"""


def _project(root):
    (root / "catalog").mkdir(parents=True)
    (root / "recorded").mkdir()
    (root / "catalog" / "models.bmad").write_text(MODELS, encoding="utf-8")
    (root / "recorded" / "answers.jsonl").write_text(
        '{"prompt": "Summarise bees", "model": "answerer", "response": "Bees."}\n', encoding="utf-8")
    (root / "flow.bmad").write_text(MAIN, encoding="utf-8")
    return root / "flow.bmad"


def _plan(path):
    result = compile_file(str(path))
    assert result.ok, [d.message for d in result.errors]
    plan, diagnostics = plan_program(result.program, make_context(result.program, provider_mode="sim"))
    assert plan is not None, [d.message for d in diagnostics]
    return plan


def test_a_moved_project_plans_to_the_same_hash(tmp_path, monkeypatch):
    first = _plan(_project(tmp_path / "here"))
    shutil.copytree(tmp_path / "here", tmp_path / "elsewhere" / "deeper")
    moved = _plan(tmp_path / "elsewhere" / "deeper" / "flow.bmad")
    # The paths the compiler resolved do differ; the hash doesn't.
    assert first.program.imports[0].resolved != moved.program.imports[0].resolved
    assert first.program.provider("rec").data != moved.program.provider("rec").data
    assert first.plan_hash == moved.plan_hash
    # Named relative to the working directory, from inside the project or above it: the same.
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert _plan("deeper/flow.bmad").plan_hash == first.plan_hash
    monkeypatch.chdir(tmp_path / "elsewhere" / "deeper")
    from_inside = _plan("flow.bmad")
    assert from_inside.plan_hash == first.plan_hash
    assert not verify_plan(from_inside)


def test_what_the_project_says_still_changes_the_hash(tmp_path):
    path = _project(tmp_path / "p")
    before = _plan(path)
    (tmp_path / "p" / "catalog" / "models.bmad").write_text(
        MODELS.replace("output $2", "output $3"), encoding="utf-8")
    assert _plan(path).plan_hash != before.plan_hash
    (tmp_path / "p" / "catalog" / "models.bmad").write_text(MODELS, encoding="utf-8")
    # The replay data named elsewhere: another plan.
    (tmp_path / "p" / "catalog" / "models.bmad").write_text(
        MODELS.replace("recorded/answers.jsonl", "recorded/other.jsonl"), encoding="utf-8")
    assert _plan(path).plan_hash != before.plan_hash


def test_a_plan_sealed_with_the_absolute_path_hash_still_verifies(tmp_path):
    plan = _plan(_project(tmp_path / "p"))
    old = legacy_plan_hash(plan)
    assert old != compute_plan_hash(plan)  # it did cover the absolute paths
    sealed_before = plan.__class__.from_json({**plan.to_json(), "plan_hash": old})
    assert not verify_plan(sealed_before)
    assert plan_hash_matches(plan, old) and plan_hash_matches(plan, plan.plan_hash)
    tampered = plan.__class__.from_json({**plan.to_json(), "plan_hash": "0" * 64})
    assert [d.code for d in verify_plan(tampered)] == ["BMAD-E220"]
    assert not plan_hash_matches(plan, "0" * 64)
