"""`bmad models` and `bmad doctor` as real subprocesses, doctor against the loopback fault server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.servers.fault_server import FaultServer  # noqa: E402

KEY = "sk-doctor-PLANTED-abcdef0123456789"


def bmad(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


def test_models_lists_the_standard_catalog_as_json():
    out = bmad("models", "--format", "json")
    assert out.returncode == 0, out.stderr
    models = {m["name"]: m for m in json.loads(out.stdout)["models"]}
    assert "local" in models and models["local"]["kind"] == "llama_cpp"
    gpt = models["gpt-4o"]
    assert gpt["price_input_per_m"] == 2.5 and gpt["context"] == 128000 and gpt["skills"]


def test_models_text_says_unknown_prices_are_not_zero(tmp_path):
    f = tmp_path / "m.bmad"
    f.write_text('provider lab {\n  kind openai\n  base_url "http://127.0.0.1:9/v1"\n}\n'
                 'model free-ish {\n  provider lab\n  id "x"\n}\n')
    out = bmad("models", str(f))
    assert out.returncode == 0, out.stderr
    assert "unknown / unknown" in out.stdout and "never $0" in out.stdout


@pytest.fixture(scope="module")
def server():
    with FaultServer(expected_key=KEY) as s:
        yield s


def workflow_for(server, tmp_path: Path, key_var: str) -> Path:
    f = tmp_path / "providers.bmad"
    f.write_text(
        f'provider good {{\n  kind openai\n  base_url "{server.base_url("openai")}"\n'
        f'  api_key env {key_var}\n}}\n'
        f'provider claude {{\n  kind anthropic\n  base_url "{server.base_url("anthropic")}"\n'
        f'  api_key env {key_var}\n}}\n'
        'model a {\n  provider good\n  id "ok"\n}\n'
        'model b {\n  provider good\n  id "not-served"\n}\n'
        'model c {\n  provider claude\n  id "claude-test"\n}\n')
    return f


def test_doctor_checks_reachability_and_auth_without_completions(server, tmp_path):
    f = workflow_for(server, tmp_path, "BMAD_DOCTOR_KEY")
    before = len(server.requests)
    out = bmad("doctor", str(f), "--format", "json", env={"BMAD_DOCTOR_KEY": KEY})
    assert out.returncode == 0, out.stdout + out.stderr
    reports = {r["provider"]: r for r in json.loads(out.stdout)["providers"]}
    assert reports["good"]["status"] == "ok" and "ok" in reports["good"]["models"]
    assert reports["claude"]["status"] == "ok"
    assert any("not-served" in n for n in reports["good"]["model_notes"])
    assert len(server.requests) == before  # no completion was made
    assert KEY not in out.stdout + out.stderr


def test_doctor_reports_a_rejected_key_and_fails(server, tmp_path):
    f = workflow_for(server, tmp_path, "BMAD_DOCTOR_KEY")
    wrong = "sk-wrong-doctor-key-0000000000"
    out = bmad("doctor", str(f), env={"BMAD_DOCTOR_KEY": wrong})
    assert out.returncode == 1
    assert "FAIL good (openai): auth" in out.stdout
    assert wrong not in out.stdout + out.stderr


def test_doctor_skips_providers_without_keys(server, tmp_path):
    f = workflow_for(server, tmp_path, "BMAD_DOCTOR_UNSET_KEY")
    env = {k: v for k, v in os.environ.items() if k != "BMAD_DOCTOR_UNSET_KEY"}
    out = subprocess.run([sys.executable, "-m", "bmad", "doctor", str(f)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0
    assert "skip good (openai): no_key" in out.stdout and "BMAD_DOCTOR_UNSET_KEY" in out.stdout


def test_doctor_refuses_a_bmad_toml_that_holds_a_key(tmp_path):
    (tmp_path / "bmad.toml").write_text('[providers.openai]\napi_key = "sk-in-a-file-123456"\n')
    out = bmad("doctor", "--config", str(tmp_path / "bmad.toml"))
    assert out.returncode == 2
    assert "BMAD-E400" in out.stderr and "sk-in-a-file-123456" not in out.stderr


def test_doctor_fails_on_a_provider_configured_wrong_instead_of_skipping_it(tmp_path):
    (tmp_path / "m.bmad").write_text('provider lab {\n  kind openai\n  api_key env LAB_DOCTOR_KEY\n}\n'
                                     'model m {\n  provider lab\n  id "x"\n}\n')
    (tmp_path / "bmad.toml").write_text('[providers.lab]\nbase_url = "ftp://example.com/v1"\n')
    out = bmad("doctor", "m.bmad", "--format", "json", cwd=tmp_path,
               env={"LAB_DOCTOR_KEY": "sk-lab-doctor-0000"})
    assert out.returncode == 1, out.stdout + out.stderr
    lab = {r["provider"]: r for r in json.loads(out.stdout)["providers"]}["lab"]
    assert lab["status"] == "error" and "BMAD-E520" in lab["detail"]


def test_bmad_toml_repoints_and_rekeys_a_standard_provider(server, tmp_path):
    """The standard catalog declares openai's base URL and key variable; this machine's bmad.toml
    wins over both (a proxy, a company key variable)."""
    (tmp_path / "bmad.toml").write_text(f'[providers.openai]\nbase_url = "{server.base_url("openai")}"\n'
                                        'api_key_env = "BMAD_TOML_OPENAI_KEY"\n')
    out = bmad("doctor", "--format", "json", cwd=tmp_path, env={"BMAD_TOML_OPENAI_KEY": KEY})
    reports = {r["provider"]: r for r in json.loads(out.stdout)["providers"]}
    # ok: the loopback server, which takes only KEY, listed its models (api.openai.com can't be
    # reached from a test, and would not take KEY)
    assert reports["openai"]["status"] == "ok", reports["openai"]
    assert KEY not in out.stdout + out.stderr
