"""A `bmad.toml` that holds a key is refused the same way by every command that reads it: BMAD-E400
with a hint to edit bmad.toml (not to set a variable that is already set), exit status 2, the key
never echoed, and no request made. `bmad check` and `bmad plan` say what `bmad run` would refuse,
so a plan never shows as runnable a configuration the run refuses.

`bmad` runs in a subprocess in a folder holding the bmad.toml; the provider points at a real HTTP
server on 127.0.0.1 that counts the requests it gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bmad.compiler.compile import compile_source
from bmad.runtime.providers import keys

KEY_VAR = "BMAD_TOML_REFUSAL_KEY"
ENV_KEY = "sk-bmadtest-ENVKEY-0123456789abcdef"
FILE_KEY = "sk-bmadtest-INFILE-9876543210fedcba"
KEYED_TOML = f'# providers\n[providers.echo]\napi_key = "{FILE_KEY}"\n'


class CountingServer:
    """An OpenAI-shaped server on 127.0.0.1 that answers every call and counts them."""

    def __init__(self) -> None:
        outer = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                outer.requests += 1
                self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.dumps({"id": "x", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "hello"},
                     "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST  # noqa: N815 - `bmad doctor` lists models

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "CountingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    with CountingServer() as s:
        yield s


def workflow(port: int) -> str:
    return f"""
provider echo {{
  kind openai
  base_url "http://127.0.0.1:{port}/v1"
  api_key env {KEY_VAR}
}}
model m1 {{
  provider echo
  id "gpt-x"
  price input $1 output $2 per 1M
}}
workflow w {{
  input q: text = "hello"
  task a {{
    prompt "Say {{{{ q }}}}"
    model m1
    fallback none
    max_tokens 20
  }}
  output a
}}
"""


def bmad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", KEY_VAR: ENV_KEY}
    for name in ("BMAD_HOME", "BMAD_CONFIG"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=180)
    assert "Traceback" not in result.stderr, result.stderr
    for text in (result.stdout, result.stderr):
        assert FILE_KEY not in text and ENV_KEY not in text
        assert FILE_KEY[:12] not in text
    return result


def assert_refused(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 2, (what, result.returncode, result.stdout, result.stderr)
    assert "BMAD-E400" in result.stderr, (what, result.stderr)
    assert "holds a key" in result.stderr, (what, result.stderr)
    assert "edit bmad.toml" in result.stderr, (what, result.stderr)
    # the variable is set: the fix is in the file, not in the environment
    assert "set the provider's key variable" not in result.stderr, (what, result.stderr)


@pytest.mark.slow  # 5-9 s of subprocess runs: with the slow suite (CI runs both), keeping the default run near 10 min
def test_check_plan_run_models_and_doctor_refuse_a_bmad_toml_holding_a_key(tmp_path, server):
    (tmp_path / "w.bmad").write_text(workflow(server.port))
    (tmp_path / "bmad.toml").write_text(KEYED_TOML)
    for args in (["check", "w.bmad"],
                 ["plan", "w.bmad"],
                 ["plan", "w.bmad", "--provider", "sim"],
                 ["plan", "w.bmad", "-o", "plan.json"],
                 ["run", "w.bmad", "--journal", "runs.db"],
                 ["run", "w.bmad", "--provider", "sim", "--journal", "runs.db"],
                 ["models", "w.bmad"],
                 ["doctor", "w.bmad"]):
        assert_refused(bmad(*args, cwd=tmp_path), " ".join(args))
    assert not (tmp_path / "plan.json").exists()
    assert server.requests == 0


def test_the_refusal_points_at_the_key_in_bmad_toml(tmp_path, server):
    (tmp_path / "w.bmad").write_text(workflow(server.port))
    (tmp_path / "bmad.toml").write_text(KEYED_TOML)
    result = bmad("check", "--format", "json", "w.bmad", cwd=tmp_path)
    assert result.returncode == 2
    [diagnostic] = json.loads(result.stdout)
    assert diagnostic["code"] == "BMAD-E400" and diagnostic["severity"] == "error"
    assert (diagnostic["file"], diagnostic["line"]) == ("bmad.toml", 3)  # the `api_key =` line
    assert diagnostic["message"] == "bmad.toml can't be used: [providers.echo] holds a key"
    assert "api_key_env" in diagnostic["hint"] and "environment variable" in diagnostic["hint"]


def test_a_sealed_plan_run_refuses_it_before_any_call(tmp_path, server):
    """A plan sealed before the key was written into bmad.toml: the providers refuse the file."""
    (tmp_path / "w.bmad").write_text(workflow(server.port))
    planned = bmad("plan", "w.bmad", "-o", "plan.json", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    (tmp_path / "bmad.toml").write_text(KEYED_TOML)
    for args in (["run", "plan.json", "--journal", "runs.db"],
                 ["run", "plan.json", "--provider", "sim", "--journal", "runs.db"]):
        assert_refused(bmad(*args, cwd=tmp_path), " ".join(args))
    assert server.requests == 0


def test_the_same_file_without_the_key_plans_and_runs(tmp_path, server):
    (tmp_path / "w.bmad").write_text(workflow(server.port))
    (tmp_path / "bmad.toml").write_text(f"[providers.echo]\napi_key_env = \"{KEY_VAR}\"\n")
    assert bmad("check", "w.bmad", cwd=tmp_path).returncode == 0
    assert bmad("plan", "w.bmad", cwd=tmp_path).returncode == 0
    result = bmad("run", "w.bmad", "--journal", "runs.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.requests == 1


def test_a_malformed_providers_table_is_e400_with_its_own_hint(tmp_path, server):
    (tmp_path / "w.bmad").write_text(workflow(server.port))
    (tmp_path / "bmad.toml").write_text('[providers.echo]\napi_key_env = "1-not-a-name"\n')
    result = bmad("check", "w.bmad", cwd=tmp_path)
    assert result.returncode == 2
    assert "BMAD-E400" in result.stderr and "api_key_env must name an environment variable" \
        in result.stderr
    assert "keys never go in files" not in result.stderr  # no key in this file


def test_the_compiler_and_the_providers_share_one_check(workdir):
    (workdir / "bmad.toml").write_text(KEYED_TOML)
    result = compile_source('workflow w { task t { prompt "x" } output t }', "w.bmad")
    [diagnostic] = [d for d in result.diagnostics if d.code == "BMAD-E400"]
    assert diagnostic.is_error and diagnostic.span.line == 3
    assert FILE_KEY not in diagnostic.message + (diagnostic.hint or "")
    with pytest.raises(keys.KeyConfigError, match=r"\[providers\.echo\] holds a key") as info:
        keys.KeyConfig.load()
    assert FILE_KEY not in str(info.value)
