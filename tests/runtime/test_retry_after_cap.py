"""A server's Retry-After longer than a retry may wait (999999 s, a date in 2099, 1e400), or longer
than the time budget has left, is not slept: the model counts as failed for the task and its
fallback answers. Before, the run hung for days, past its `budget 15s` and the provider timeout.

A real HTTP server on 127.0.0.1 (`UsageServer` of test_budget_overrun.py), `bmad run` in a
subprocess (its own timeout would catch a hang), the real SQLite journal read back.
"""

from __future__ import annotations

import time

import pytest

from bmad.runtime.rate_limits import MAX_PAUSE_S, ProviderRateLimit
from bmad.runtime.retry import RetryPolicy, requested_wait
from bmad.runtime.providers import base
from test_budget_overrun import UsageServer, journal_rows, model_name, run_file


@pytest.fixture(scope="module")
def server():
    with UsageServer() as s:
        yield s


def workflow(server: UsageServer, limited: str, budget: str = "15s") -> str:
    return server.catalog(limited, "ok") + f"""
workflow r429b {{
  budget {budget}
  task t {{
    prompt "Say hi"
    model {model_name(limited)}
    fallback [m_ok]
    max_tokens 50
  }}
  output t
}}
"""


@pytest.mark.parametrize("limited", ["r429big", "r429date", "r429inf"])
def test_a_huge_retry_after_falls_back_instead_of_hanging(server, tmp_path, limited):
    before = server.count(limited)
    out, journal = run_file(tmp_path, workflow(server, limited), timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out.json").read_text().count("hello") == 1
    assert server.count(limited) - before == 1  # tried once, never retried
    [(status,)] = journal_rows(journal, "SELECT status FROM runs")
    assert status == "completed"
    [(error,)] = journal_rows(journal, f"SELECT error FROM calls WHERE model='{model_name(limited)}'")
    assert "the server asks to wait" in error and "not retried" in error
    # `completed` alone would hide that another model did the work
    assert f"note: task t was answered by m_ok, a fallback, as {model_name(limited)} failed" in out.stderr


def test_a_retry_after_past_the_time_budget_falls_back(server, tmp_path):
    # 20 s is within what a retry may wait (backoff max 30 s), but the run has 10 s in all. The
    # fallback is on another provider (the 429 pauses its own provider for 20 s).
    other = server.catalog("ok").replace("provider lab", "provider lab2").replace("m_ok", "m_ok2")
    source = workflow(server, "r429:20", budget="10s").replace("fallback [m_ok]",
                                                                  "fallback [m_ok2]")
    before = server.count("r429:20")
    out, journal = run_file(tmp_path, other + source, timeout=60)
    assert out.returncode == 0, out.stderr
    assert server.count("r429:20") - before == 1
    [(error,)] = journal_rows(journal, "SELECT error FROM calls WHERE model='m_r429_20'")
    assert "would pass the time budget" in error


def test_a_provider_pause_past_the_time_budget_ends_the_run_at_its_cap(server, tmp_path):
    # The fallback shares the paused provider: the run ends `budget_exhausted` when its 3 s are
    # up, rather than waiting out the 20 s pause.
    out, journal = run_file(tmp_path, workflow(server, "r429:20", budget="3s"), timeout=60)
    assert out.returncode == 3, out.stderr
    [(status, error)] = journal_rows(journal, "SELECT status, error FROM runs")
    assert status == "budget_exhausted" and "time budget exhausted" in error


def test_waits_are_bounded():
    policy = RetryPolicy()
    assert policy.longest_wait(5.0) == 30.0 and policy.longest_wait(120.0) == 120.0
    too_long = base.RateLimited("rate limited", retry_after_s=float("inf"))
    assert requested_wait(too_long) == float("inf")
    assert requested_wait(base.RateLimited("x", retry_after_s=float("nan"))) is None
    assert requested_wait(base.RateLimited("x", retry_after_s=-5)) is None
    limits = ProviderRateLimit(None)
    limits.pause(float("inf"))
    limits.pause(1e400)
    limits.pause(2.3e9)
    assert limits.paused_until <= time.monotonic() + MAX_PAUSE_S
    limits = ProviderRateLimit(None)
    limits.pause(float("nan"))
    assert limits.paused_until == 0.0


@pytest.mark.parametrize("fallback", ["fallback [m_ok]", "fallback none"])
def test_a_call_cut_off_by_the_time_budget_ends_the_run_budget_exhausted(server, tmp_path, fallback):
    # The server takes 10 s; the run has 2 s. The call is cut at the budget's end, which is the
    # budget running out (exit 3), with or without a fallback: before, it was `failed` (exit 1)
    # with no fallback and `budget_exhausted` with one.
    source = workflow(server, "delay:10", budget="2s").replace("fallback [m_ok]", fallback)
    out, journal = run_file(tmp_path, source, timeout=60)
    assert out.returncode == 3, out.stderr
    [(status, error)] = journal_rows(journal, "SELECT status, error FROM runs")
    assert status == "budget_exhausted" and "time budget exhausted" in error
    [(call_error,)] = journal_rows(journal, "SELECT error FROM calls WHERE model='m_delay_10'")
    assert "the time budget ran out" in call_error
    assert journal_rows(journal, "SELECT COUNT(*) FROM calls WHERE model='m_ok'") == [(0,)]
