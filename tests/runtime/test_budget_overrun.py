"""Spend a provider reports past the dollar cap: recorded in full, and the run ends
`budget_exhausted` (exit 3) saying by how much it went over, whatever the concurrency. Usage a
server reports as negative never lowers the spend.

A real OpenAI-shaped HTTP server on 127.0.0.1 (`UsageServer`, shared with
test_retry_after_cap.py and test_resume_for_each.py), `bmad run` in a subprocess, the real SQLite
journal read back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bmad.runtime.ledger import BudgetLedger, BudgetOverrun

KEY_VAR = "BMAD_USAGE_TEST_KEY"


class UsageServer:
    """OpenAI chat completions on 127.0.0.1; the model id picks the answer:

    ok                a normal answer (10 input, 5 output tokens)
    bigusage          200 with usage of 2M input and 5M output tokens ($12 at $1/$2 per 1M)
    negusage          200 with usage of -1M input and -5M output tokens
    r429big           429 with Retry-After: 999999
    r429date          429 with Retry-After: an HTTP date in 2099
    r429inf           429 with Retry-After: 1e400
    r429:N            429 with Retry-After: N
    delay:N           answers after N seconds
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def send(self, code: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.send(200, {"data": [{"id": "ok"}]})

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                model = request.get("model", "")
                with server.lock:
                    server.counts[model] = server.counts.get(model, 0) + 1
                mode, _, arg = model.partition(":")

                def answer(it: int = 10, ot: int = 5) -> None:
                    self.send(200, {"id": "x", "object": "chat.completion", "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "hello"},
                         "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": it, "completion_tokens": ot,
                                  "total_tokens": it + ot}})

                limited = {"error": {"message": "rate limited", "type": "rate_limit"}}
                if mode == "bigusage":
                    answer(2_000_000, 5_000_000)
                elif mode == "negusage":
                    answer(-1_000_000, -5_000_000)
                elif mode == "r429big":
                    self.send(429, limited, {"Retry-After": "999999"})
                elif mode == "r429date":
                    self.send(429, limited, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
                elif mode == "r429inf":
                    self.send(429, limited, {"Retry-After": "1e400"})
                elif mode == "r429":
                    self.send(429, limited, {"Retry-After": arg})
                elif mode == "delay":
                    time.sleep(float(arg))
                    answer()
                else:
                    answer()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "UsageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, model_id: str) -> int:
        with self.lock:
            return self.counts.get(model_id, 0)

    def catalog(self, *ids: str) -> str:
        """A provider `lab` on this server and one model per id (named `m_<id>`, `:` as `_`)."""
        text = (f'provider lab {{\n  kind openai\n  base_url "{self.url}"\n'
                f'  api_key env {KEY_VAR}\n  timeout 5s\n}}\n')
        for model_id in ids:
            text += (f'model {model_name(model_id)} {{\n  provider lab\n  id "{model_id}"\n'
                     '  price input $1.00 output $2.00 per 1M\n  context 128k\n'
                     '  skills { writing 0.8, reasoning 0.8 }\n}\n')
        return text


def model_name(model_id: str) -> str:
    return "m_" + model_id.replace(":", "_").replace(".", "_")


def bmad(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, KEY_VAR: "sk-test-usage-0123456789"}
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=timeout)


def run_file(tmp_path: Path, source: str, *args: str, timeout: float = 60):
    f = tmp_path / "wf.bmad"
    f.write_text(source)
    journal = tmp_path / "runs.db"
    out = bmad(tmp_path, "run", str(f), "--journal", str(journal), "-o",
               str(tmp_path / "out.json"), *args, timeout=timeout)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    return out, journal


def journal_rows(journal: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(journal)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def server():
    with UsageServer() as s:
        yield s


def test_concurrent_calls_over_the_cap_end_budget_exhausted(server, tmp_path):
    source = server.catalog("bigusage") + """
workflow bu {
  budget $0.01 per run
  input items: list<text> = ["a","b","c","d","e","f","g","h"]
  task t for each x in items {
    prompt "Say hi {{ x }}"
    model m_bigusage
    max_tokens 50
  }
  output t
}
"""
    out, journal = run_file(tmp_path, source, "--concurrency", "8")
    assert out.returncode == 3, out.stderr
    [(status, spent, error)] = journal_rows(journal, "SELECT status, spent_usd, error FROM runs")
    assert status == "budget_exhausted"
    # The real spend is recorded, never trimmed: every call that ran is paid for.
    paid = server.count("bigusage")
    assert spent == pytest.approx(12.0 * paid)
    [(recorded,)] = journal_rows(journal, "SELECT SUM(cost_usd) FROM calls WHERE status='ok'")
    assert recorded == pytest.approx(spent)
    # The message states the overrun.
    assert f"spent ${12 * paid:g} of its $0.01 cap, over by $" in error
    assert "over by" in out.stderr
    alerts = [json.loads(d)["threshold"] for (d,) in journal_rows(
        journal, "SELECT data_json FROM events WHERE kind='budget_alert'")]
    assert 1.0 in alerts


def test_an_overrun_starts_no_further_call(server, tmp_path):
    source = server.catalog("bigusage") + """
workflow bu {
  budget $0.01 per run
  input items: list<text> = ["a","b","c","d","e","f"]
  task t for each x in items {
    prompt "Say hi {{ x }}"
    model m_bigusage
    max_tokens 50
  }
  output t
}
"""
    before = server.count("bigusage")
    out, journal = run_file(tmp_path, source, "--concurrency", "2")
    assert out.returncode == 3, out.stderr
    # Two items were in flight when the first overran; nothing started after that.
    assert server.count("bigusage") - before == 2
    [(status,)] = journal_rows(journal, "SELECT status FROM runs")
    assert status == "budget_exhausted"


def test_negative_usage_never_lowers_spend(server, tmp_path):
    source = server.catalog("negusage", "bigusage") + """
workflow negcredit {
  budget $0.01 per run
  input items: list<text> = ["a","b","c"]
  input more: list<text> = ["x","y"]
  task first for each i in items {
    prompt "Say hi {{ i }}"
    model m_negusage
    max_tokens 5
  }
  task t for each x in more {
    prompt "Say hi {{ x }} {{ first }}"
    model m_bigusage
    max_tokens 20
  }
  output t
}
"""
    before = server.count("bigusage")
    out, journal = run_file(tmp_path, source, "--concurrency", "1")
    assert out.returncode == 3, out.stderr
    # No credit from the negative usage: the first $12 call exhausts the budget, the second
    # never runs.
    assert server.count("bigusage") - before == 1
    [(status, spent, tokens)] = journal_rows(journal, "SELECT status, spent_usd, tokens FROM runs")
    assert status == "budget_exhausted"
    assert spent >= 12.0 and tokens >= 7_000_000
    rows = journal_rows(journal, "SELECT input_tokens, output_tokens, cost_usd FROM calls "
                                 "WHERE model='m_negusage'")
    assert len(rows) == 3
    assert all(i >= 0 and o >= 0 and c >= 0 for i, o, c in rows)


def test_the_ledger_never_records_a_credit():
    ledger = BudgetLedger(usd=1.0, tokens=1000)
    held = ledger.try_reserve(0.1, 10)
    ledger.settle(held, -5.0, -500)
    assert ledger.spent_usd == 0.0 and ledger.spent_tokens == 0
    ledger.record(float("nan"), -3)
    assert ledger.spent_usd == 0.0 and ledger.spent_tokens == 0
    held = ledger.try_reserve(0.1, 10)
    ledger.settle(held, 3.0, 10)  # a provider billed past the worst case
    assert ledger.spent_usd == 3.0
    assert isinstance(ledger.exhausted, BudgetOverrun)
    assert "spent $3 of its $1 cap, over by $2" in str(ledger.exhausted)
