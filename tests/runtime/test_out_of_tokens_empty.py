"""An answer with no text because it ran out of `max_tokens` first (finish reason `length`,
`max_tokens` or `MAX_TOKENS`: a reasoning model thinking through its whole allowance) is not
retried, since the same request would run out again: the fallback is asked at once, and the
error says to raise `max_tokens`. Other empty answers are still retried.

Real HTTP servers on 127.0.0.1 for all four protocols (`ShapeServer` of
test_provider_answer_shapes.py), the real journal read back."""

from __future__ import annotations

import sqlite3

import pytest

from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.providers import base
from bmad.runtime.providers.registry import ProviderOptions, build_provider

from runtime_support import plan_source
from test_provider_answer_shapes import (_ANTHROPIC, _GEMINI_USAGE, KINDS, _no_config, _openai,
                                         answer_body, complete, shape_server)  # noqa: F401 (fixture)

OUT_OF_TOKENS = {
    "openai": _openai({"content": None}, finish="length"),
    "anthropic": {**_ANTHROPIC, "stop_reason": "max_tokens", "content": []},
    "gemini": {"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}],
               "usageMetadata": _GEMINI_USAGE},
    "ollama": {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True,
               "done_reason": "length", "prompt_eval_count": 10, "eval_count": 50},
}


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_answer_out_of_tokens_is_not_retryable(shape_server, kind):
    shape_server.serve(kind, "thinker", OUT_OF_TOKENS[kind])
    with pytest.raises(base.OutOfTokensEmpty) as info:
        complete(shape_server, kind, "thinker")
    error = info.value
    assert not error.retryable and error.kind == "transient"
    assert "the answer has no text" in error.message and "raise the task's max_tokens" in error.message
    assert error.billed_tokens[0] >= 1  # billed all the same


@pytest.mark.parametrize("kind", KINDS)
def test_a_workflow_falls_back_at_once(tmp_path, shape_server, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BMAD_CONFIG", raising=False)
    shape_server.serve(kind, "thinker", OUT_OF_TOKENS[kind])
    shape_server.serve(kind, "good", answer_body(kind, "the fallback's answer"))
    catalog = (f'provider p {{ kind {kind}  base_url "{shape_server.base_url(kind)}" }}\n'
               'model thinker { provider p  id "thinker"  price input $1 output $2 per 1M }\n'
               'model good { provider p  id "good"  price input $1 output $2 per 1M }\n')
    workflow = ('workflow w {\n  task a { prompt "x"  model thinker  retry 3 backoff fixed 10ms to 10ms'
                '  fallback [good] }\n  output a\n}\n')
    plan = plan_source(tmp_path, workflow, catalog=catalog)
    options = ProviderOptions(models=plan.program.models, config=_no_config())
    outcome = execute_plan(plan, RunRequest(
        config=RunConfig(), journal_path=tmp_path / "runs.db",
        provider_factory=lambda decl: build_provider(decl, options=options)))
    assert outcome.status == "completed", outcome.error
    assert outcome.outputs == {"a": "the fallback's answer"}
    db = sqlite3.connect(tmp_path / "runs.db")
    try:
        rows = db.execute("SELECT model, status, error, cost_usd FROM calls ORDER BY id").fetchall()
    finally:
        db.close()
    [failed] = [r for r in rows if r[0] == "thinker"]  # one call: not retried
    assert failed[1] == "error" and "max_tokens ran out" in failed[2] and failed[3] > 0
    assert [r[0] for r in rows if r[1] == "ok"] == ["good"]
