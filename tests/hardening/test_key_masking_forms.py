"""A loaded key is masked in the forms it gets written in besides its own: percent-encoded (a server
echoing it URL-encoded, any of its characters, either hex case) and backslash-escaped as `repr()`
or JSON write it (an exception that quotes a header); whole, or 8+ leading characters of it. A key
variable whose value holds a line break, another control character or a non-ASCII character is
refused before any call (BMAD-E401), naming the variable and never the value.

Real HTTP servers on 127.0.0.1 that echo the Authorization header, `bmad` in a subprocess, the
SQLite journal and the export read back."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import anyio
import pytest

from bmad.runtime.providers import base, keys
from bmad.runtime.providers.openai import OpenAIProvider

KEY_VAR = "BMAD_MASKING_FORMS_KEY"
KEY = "sk-bmadtest-ENC0DED-0123456789abcdef"


def encode_all(text: str, lower: bool = False) -> str:
    """Every character that is not an ASCII letter or digit as %XX (the QA server's `-` ->
    `%2D`), in upper or lower case hex."""
    spec = "%{:02x}" if lower else "%{:02X}"
    return "".join(c if c.isascii() and c.isalnum() else "".join(spec.format(b) for b in c.encode())
                   for c in text)


def forms(key: str) -> dict[str, str]:
    return {
        "percent, upper hex": encode_all(key),
        "percent, lower hex": encode_all(key, lower=True),
        "quote": quote(key, safe=""),
        "quote_plus": quote_plus(key),
        "repr": repr(key)[1:-1],
        "json": json.dumps(key)[1:-1],
        "bytes repr": repr(key.encode())[2:-1],
        "first 14, encoded": encode_all(key[:14]),
    }


# -- the masking itself ------------------------------------------------------------------------

@pytest.mark.parametrize("secret", [KEY, "sk-qafakeNL\nSECRETTAIL99", "pw\x01tab\tkey-\u00e9\u00e8-0123"])
def test_encoded_and_escaped_forms_of_a_loaded_key_are_masked(secret):
    keys.remember_secret(secret)
    for name, form in forms(secret).items():
        if form == secret[:len(form)]:
            continue  # nothing encoded in this form of this secret: the plain passes' business
        for text in (f"error: key {form} rejected", f'{{"echo": "{form}"}}', f"url-enc={form}&x=1"):
            for mask in (keys.redact, keys.mask_loaded_secrets):
                masked = mask(text)
                assert form not in masked, (name, mask.__name__, masked)
                assert keys.REDACTED in masked, (name, mask.__name__, masked)
            assert keys.holds_loaded_secret(text), name
            assert keys.holds_loaded_secret(text.encode()), name


def test_the_repr_of_an_illegal_header_leaves_nothing_of_the_key():
    """The QA case: httpx's LocalProtocolError quotes the header as bytes, with `\\n` escaped."""
    secret = "sk-qafakeNL\nSECRETTAIL99"
    keys.remember_secret(secret)
    text = f"LocalProtocolError: Illegal header value {('Bearer ' + secret).encode()!r}"
    for mask in (keys.redact, keys.mask_loaded_secrets):
        masked = mask(text)
        assert "SECRETTAIL99" not in masked and "qafake" not in masked, masked


def test_text_with_escapes_and_percents_but_no_key_is_left_alone():
    keys.remember_secret(KEY)
    text = 'print("50%\\n") # sk%2 sk-bmad \\x41 %41%42 ' + encode_all(KEY[:7])  # 7 of 8 characters
    assert keys.mask_loaded_secrets(text) == text
    assert not keys.holds_loaded_secret(text)


def test_an_encoded_prefix_glued_to_a_word_is_not_masked_but_a_separate_one_is():
    keys.remember_secret(KEY)
    head = encode_all(KEY[:12])
    assert keys.mask_loaded_secrets(f"abc{head}") == f"abc{head}"
    assert keys.mask_loaded_secrets(f"key={head}...") == "key=***..."


def test_a_long_key_is_masked_without_trouble():
    secret = "sk-" + "aB3_-" * 300  # 1,503 characters: a pattern per character, none nested
    keys.remember_secret(secret)
    assert keys.redact(f"x {encode_all(secret)} y") == "x *** y"


# -- a key variable that can't be a key ----------------------------------------------------------

@pytest.mark.parametrize("value, what", [
    ("sk-qafakeNL\nSECRETTAIL99", "a line break"),
    ("sk-qafakeCR\rSECRETTAIL99", "a line break"),
    ("sk-qafakeTB\tSECRETTAIL99", "a tab"),
    ("sk-qafakeNUL\x00SECRETTAIL99", "a control character"),
    ("sk-qafakeDEL\x7fSECRETTAIL99", "a control character"),
    ("sk-qafake\u00e9SECRETTAIL99", "a character outside printable ASCII"),
])
def test_a_key_variable_with_a_control_character_is_refused_naming_the_variable(value, what):
    problem = keys.key_value_problem(KEY_VAR, value)
    assert problem is not None and KEY_VAR in problem and what in problem
    assert "SECRETTAIL99" not in problem and "qafake" not in problem
    provider = OpenAIProvider(name="p", base_url="http://127.0.0.1:9/v1", key_variables=(KEY_VAR,),
                              key_required=True, environ={KEY_VAR: value})
    with pytest.raises(base.Unavailable) as info:
        anyio.run(provider.complete, base.CompletionRequest(
            model_id="m", messages=(base.Message("user", "hi"),), timeout_s=5))
    assert "BMAD-E401" in info.value.message and KEY_VAR in info.value.message
    assert "SECRETTAIL99" not in repr(info.value) + str(info.value)


def test_surrounding_whitespace_is_not_a_problem():
    assert keys.key_value_problem(KEY_VAR, "sk-fine key-0123") is None
    assert keys.read_key((KEY_VAR,), {KEY_VAR: "  sk-fine-0123456789\n"})[0] == "sk-fine-0123456789"


# -- through bmad run, with real servers ----------------------------------------------------------

class EchoServer:
    """OpenAI-shaped, on 127.0.0.1: echoes the Authorization header's key in encoded forms, in the
    answer of a prompt without FAIL and in a 401 error for a prompt with it."""

    def __init__(self) -> None:
        outer = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                outer.requests += 1
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                key = self.headers.get("authorization", "").split()[-1]
                echoed = " ".join(forms(key).values())
                if b"FAIL" in body:
                    data = {"error": {"message": f"Incorrect API key provided: {echoed}",
                                      "type": "invalid_request_error", "code": "invalid_api_key"}}
                    self.send_response(401)
                else:
                    data = {"id": "x", "object": "chat.completion", "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": f"key is {echoed}"},
                         "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 9}}
                    self.send_response(200)
                payload = json.dumps(data).encode()
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST  # noqa: N815 - `bmad doctor` lists models

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "EchoServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    with EchoServer() as s:
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
  task ok {{
    prompt "Say hi"
    model m1
    fallback none
    max_tokens 20
  }}
  task bad {{
    prompt "Say FAIL"
    model m1
    fallback none
    max_tokens 20
  }}
  output ok
}}
"""


def bmad(*args: str, cwd: Path, key: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", KEY_VAR: key}
    for name in ("BMAD_HOME", "BMAD_CONFIG"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=180)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def journal_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_a_key_echoed_url_encoded_is_masked_everywhere(tmp_path, server):
    (tmp_path / "w.bmad").write_text(workflow(server.port))
    journal = tmp_path / "runs.db"
    run = bmad("run", "w.bmad", "--journal", str(journal), "--json-events", cwd=tmp_path, key=KEY)
    assert run.returncode == 1, run.stderr  # `bad` failed on the 401
    assert server.requests >= 2
    run_id = sqlite3.connect(journal).execute("SELECT id FROM runs").fetchone()[0]
    export = bmad("export", run_id, "--journal", str(journal), cwd=tmp_path, key=KEY)
    show = bmad("show", run_id, "--journal", str(journal), cwd=tmp_path, key=KEY)
    doctor = bmad("doctor", "w.bmad", cwd=tmp_path, key=KEY)
    texts = {"run stdout": run.stdout, "run stderr": run.stderr, "export": export.stdout,
             "show": show.stdout + show.stderr, "doctor": doctor.stdout + doctor.stderr}
    stored = journal_bytes(journal)
    for name, form in forms(KEY).items():
        for where, text in texts.items():
            assert form not in text, (name, where)
        assert form.encode() not in stored, name
    assert KEY[:12] not in "".join(texts.values())
    assert keys.REDACTED in export.stdout  # the echoes were there, masked
    db = sqlite3.connect(journal)
    errors = [r[0] for r in db.execute("SELECT error FROM calls WHERE error IS NOT NULL")]
    assert errors and all("Incorrect API key provided: ***" in e for e in errors), errors


def test_a_key_with_a_line_break_is_refused_before_any_call(tmp_path, server):
    (tmp_path / "w.bmad").write_text(workflow(server.port))
    key = "sk-qafakeNL\nSECRETTAIL99"
    run = bmad("run", "w.bmad", "--journal", "runs.db", "--json-events", cwd=tmp_path, key=key)
    assert run.returncode == 2, run.stderr
    assert "BMAD-E401" in run.stderr and KEY_VAR in run.stderr and "a line break" in run.stderr
    doctor = bmad("doctor", "w.bmad", cwd=tmp_path, key=key)
    assert "BMAD-E401" in doctor.stdout and KEY_VAR in doctor.stdout
    assert doctor.returncode == 1 and doctor.stdout.startswith("FAIL")  # to fix, not skipped
    for text in (run.stdout, run.stderr, doctor.stdout, doctor.stderr):
        assert "SECRETTAIL99" not in text and "qafakeNL" not in text
    assert server.requests == 0
