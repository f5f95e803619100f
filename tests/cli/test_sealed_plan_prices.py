"""A sealed plan is stale (BMAD-E221) when the price override in force (`bmad models --prices`) isn't
the one it was priced with: added since, changed, removed, or another file; `bmad run plan.json` and
`bmad run --resume RUN plan.json` refuse it, naming the price file. Plans that record no override
still run while none that reprices their models is in force, as plans sealed before the field do.

Every command runs as a real subprocess with its own BMAD_HOME, XDG_CONFIG_HOME and HOME."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema

from bmad.compiler.passes.seal_plan import compute_plan_hash
from bmad.compiler.plan import Plan

SCHEMA = json.loads(resources.files("bmad.compiler.schema").joinpath("plan.v1.json").read_text())
WORKFLOW = ('workflow w {\n  task t {\n    prompt "hi"\n    model gpt-4o\n    max_tokens 40\n  }\n'
            '  output t\n}\n')


def litellm(path: Path, **prices: tuple[float, float]) -> Path:
    """A LiteLLM price map: model key -> (input, output) USD per 1M tokens."""
    path.write_text(json.dumps({key: {"input_cost_per_token": i / 1e6, "output_cost_per_token": o / 1e6,
                                      "max_input_tokens": 128000, "litellm_provider": "openai"}
                                for key, (i, o) in prices.items()}))
    return path


class Bmad:
    """`bmad` in `project`, with a user-level folder of its own (`home`: BMAD_HOME)."""

    def __init__(self, project: Path, home: Path):
        self.project, self.home = project, home

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update(NO_COLOR="1", BMAD_HOME=str(self.home), XDG_CONFIG_HOME=str(self.project / "xdg"),
                   HOME=str(self.project / "fakehome"))
        result = subprocess.run([sys.executable, "-m", "bmad", *args], cwd=self.project, env=env,
                                capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def prices(self, path: Path) -> None:
        loaded = self("models", "--prices", str(path))
        assert loaded.returncode == 0, loaded.stderr

    def plan(self, out: str) -> dict:
        planned = self("plan", "w.bmad", "--provider", "sim", "-o", out)
        assert planned.returncode == 0, planned.stderr
        return json.loads((self.project / out).read_text())

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return self("run", *args, "--provider", "sim", "--sim-latency-scale", "0", "--journal", "runs.db")


def project(tmp_path: Path) -> Bmad:
    (tmp_path / "w.bmad").write_text(WORKFLOW)
    return Bmad(tmp_path, tmp_path / "home")


def assert_stale(result: subprocess.CompletedProcess, price_file: Path) -> None:
    assert result.returncode == 2, result.stderr
    assert "error[BMAD-E221]: prices changed since this plan was made" in result.stderr
    assert str(price_file) in result.stderr
    assert "--replan" in result.stderr and "run " not in result.stdout


def test_prices_loaded_after_sealing_make_the_plan_stale(tmp_path):
    bmad = project(tmp_path)
    data = bmad.plan("before.json")
    assert "prices" not in data  # no override: the plan records none, as plans always did
    # an override that reprices none of the plan's models changes nothing it decided
    bmad.prices(litellm(tmp_path / "other.json", **{"some-other-model": (1.0, 1.0)}))
    assert bmad.run("before.json").returncode == 0
    bmad.prices(litellm(tmp_path / "lite.json", **{"gpt-4o": (5.0, 20.0)}))
    stale = bmad.run("before.json")
    assert_stale(stale, bmad.home / "prices.json")
    assert "reprices gpt-4o" in stale.stderr and str(tmp_path / "lite.json") in stale.stderr
    assert bmad.run("before.json", "--replan").returncode == 0


@pytest.mark.slow  # a minute of subprocess runs in all: with the slow suite (CI runs both)
def test_resume_with_a_plan_sealed_under_other_prices_is_refused_and_replan_resumes_it(tmp_path):
    bmad = project(tmp_path)
    bmad.plan("before.json")
    failed = bmad.run("before.json", "--json-events", "--sim-failure-rate", "1")  # a run to resume
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout.splitlines()[0])["run_id"]
    bmad.prices(litellm(tmp_path / "lite.json", **{"gpt-4o": (5.0, 20.0)}))
    assert_stale(bmad.run("--resume", run_id, "before.json"), bmad.home / "prices.json")
    # re-planned from its unchanged source, the run goes on with its own plan and the prices it
    # started with, as a resume without FILE does (the override was a plan mismatch, E303)
    resumed = bmad.run("--resume", run_id, "before.json", "--replan", "--sim-failure-rate", "0")
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {run_id}: completed" in resumed.stderr + resumed.stdout


@pytest.mark.slow  # 5-9 s of subprocess runs: with the slow suite (CI runs both), keeping the default run near 10 min
def test_a_plan_names_its_override_and_any_change_to_it_is_stale(tmp_path):
    bmad = project(tmp_path)
    bmad.prices(litellm(tmp_path / "lite.json", **{"gpt-4o": (5.0, 20.0)}))
    data = bmad.plan("priced.json")
    override = bmad.home / "prices.json"
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["prices"] == str(override) and str(override) in data["sources"]
    assert bmad.run("priced.json").returncode == 0

    bmad.prices(litellm(tmp_path / "newer.json", **{"gpt-4o": (1.0, 4.0)}))  # changed
    changed = bmad.run("priced.json")
    assert_stale(changed, override)
    assert "was replaced" in changed.stderr and str(tmp_path / "newer.json") in changed.stderr

    override.unlink()  # removed: the catalog's prices again
    removed = bmad.run("priced.json")
    assert_stale(removed, override)
    assert "was removed" in removed.stderr and "BMAD-E222" not in removed.stderr


@pytest.mark.slow  # a minute of subprocess runs in all: with the slow suite (CI runs both)
def test_another_bmad_home_means_other_prices(tmp_path):
    bmad = project(tmp_path)
    bmad.prices(litellm(tmp_path / "lite.json", **{"gpt-4o": (5.0, 20.0)}))
    bmad.plan("priced.json")
    elsewhere = Bmad(tmp_path, tmp_path / "other-home")  # no override there: the catalog's prices
    stale = elsewhere.run("priced.json")
    assert_stale(stale, bmad.home / "prices.json")
    assert "the catalog's prices are in force" in stale.stderr


@pytest.mark.slow  # a minute of subprocess runs in all: with the slow suite (CI runs both)
def test_a_plan_sealed_before_plans_named_their_override_runs_until_prices_change(tmp_path, monkeypatch):
    bmad = project(tmp_path)
    monkeypatch.chdir(tmp_path)  # the hash is over paths relative to the main file's folder
    bmad.prices(litellm(tmp_path / "lite.json", **{"gpt-4o": (5.0, 20.0)}))
    data = bmad.plan("priced.json")
    # as an earlier bmad sealed it: the override among the sources, no `prices`
    old = Plan.from_json({k: v for k, v in data.items() if k != "prices"})
    old_data = {**data, "plan_hash": compute_plan_hash(old)}
    old_data.pop("prices", None)
    (tmp_path / "old.json").write_text(json.dumps(old_data))
    assert bmad.run("old.json").returncode == 0

    bmad.prices(litellm(tmp_path / "newer.json", **{"gpt-4o": (1.0, 4.0)}))
    assert_stale(bmad.run("old.json"), bmad.home / "prices.json")
