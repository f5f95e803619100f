"""A provider that runs its models in this process (`kind llama_cpp`, the embedded `local` model)
runs one call at a time: llama.cpp objects aren't thread-safe, so runtime/providers/llama_cpp.py
holds a lock per model. The plan assumes the same (`catalog.IN_PROCESS_CONCURRENCY`): its latency
counts the items of a `for each` and the chunks of a `reduce` level one after another, its
provider concurrency (which the runtime's provider slots take) says 1, and BMAD-W233 doesn't claim
the default concurrency for it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anyio
import pytest

from bmad.compiler.catalog import DEFAULT_PROVIDER_CONCURRENCY, IN_PROCESS_CONCURRENCY
from bmad.compiler.compile import compile_source
from bmad.compiler.passes import make_context, plan_program

SOURCE = """
provider lp { kind llama_cpp limits { concurrent 4 } }
provider hosted { kind openai api_key env HOSTED_KEY }
provider paired { kind openai api_key env PAIRED_KEY limits { concurrent 2 } }
model tiny { provider lp price input $0 output $0 per 1M latency 1s + 10ms per token skills { writing 0.6 } }
model remote { provider hosted price input $1 output $2 per 1M latency 1s + 10ms per token skills { writing 0.6 } }
model pair { provider paired price input $1 output $2 per 1M latency 1s + 10ms per token skills { writing 0.6 } }
workflow w {
  input docs: list<text> = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
  task each for each d in docs { prompt "Summarize {{ d }}" model MODEL fallback none max_tokens 100 }
  task merged { prompt "Merge {{ each }}" reduce each in chunks of 4 model MODEL fallback none max_tokens 100 }
  output merged
}
"""
PER_CALL = 1.0 + 0.01 * 50  # the expected output: half of max_tokens


def plan_on(model: str):
    result = compile_source(SOURCE.replace("MODEL", model), "w.bmad")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    plan, diagnostics = plan_program(result.program, make_context(result.program, environment={},
                                                                  provider_mode="sim"))
    assert plan is not None, [d.message for d in diagnostics]
    return plan


def test_an_in_process_model_runs_its_items_and_chunks_one_at_a_time():
    plan = plan_on("tiny")
    each, merged = plan.tasks
    assert plan.provider_concurrency["lp"] == IN_PROCESS_CONCURRENCY == 1  # whatever `limits` says
    assert each.estimate.latency_s == pytest.approx(10 * PER_CALL)
    # 10 items in chunks of 4: 3 chunks, then 1 call over their summaries
    assert merged.estimate.latency_s == pytest.approx(4 * PER_CALL)
    assert not [n for n in plan.notes if n.code == "BMAD-W233" and "`lp`" in n.message]


def test_a_hosted_provider_runs_its_concurrency_at_a_time():
    plan = plan_on("remote")
    each, merged = plan.tasks
    assert plan.provider_concurrency["hosted"] == DEFAULT_PROVIDER_CONCURRENCY == 4
    assert each.estimate.latency_s == pytest.approx(3 * PER_CALL)  # 4 + 4 + 2
    assert merged.estimate.latency_s == pytest.approx(2 * PER_CALL)
    w233 = [n.message for n in plan.notes if n.code == "BMAD-W233"]
    assert w233 == ["provider `hosted` declares no limits: the runtime assumes 4 concurrent calls and no rate limit"]
    paired = plan_on("pair")
    # a reduce level's chunks queue for the provider's slots too: 3 chunks 2 at a time, then 1
    assert paired.tasks[1].estimate.latency_s == pytest.approx(3 * PER_CALL)


def test_the_runtime_runs_an_in_process_model_one_call_at_a_time():
    """The number the plan assumes is what runtime/providers/llama_cpp.py does: calls made at
    once to one model wait for each other."""
    from bmad.runtime.providers import base
    from bmad.runtime.providers.llama_cpp import LlamaCppProvider, _Loaded

    provider = LlamaCppProvider("lp")
    loaded: list[_Loaded] = []
    running, peak, guard = [0], [0], threading.Lock()

    async def model(_request):
        if not loaded:
            loaded.append(_Loaded(llm=None, path=Path("tiny.gguf"), chat=False, lock=anyio.Lock()))
        return loaded[0]

    def generate(_loaded, _request, _stop, _report):
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with guard:
            running[0] -= 1
        return "ok", 1, 1, "stop"

    provider._model = model  # type: ignore[method-assign]
    provider._generate = generate  # type: ignore[method-assign]
    request = base.CompletionRequest(model_id="tiny", messages=(base.Message("user", "hi"),))

    async def main():
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(provider.complete, request)

    anyio.run(main)
    assert peak[0] == IN_PROCESS_CONCURRENCY


def test_the_runtime_takes_the_planners_rule_for_providers_the_plan_does_not_list():
    # A provider only a fallback uses isn't in the plan's concurrency table: the runtime's pool
    # used its own default (8) there while the plan's timing and BMAD-W233 assumed 4.
    from bmad.compiler import ir
    from bmad.runtime.model_pool import ModelPool

    program = ir.Program(providers=(ir.Provider(name="hosted", kind="sim"),
                                    ir.Provider(name="gguf", kind="llama_cpp"),
                                    ir.Provider(name="limited", kind="sim",
                                                limits=ir.Limits(concurrent=2))))
    pool = ModelPool(program, lambda decl: object(), provider_concurrency={})
    assert pool._provider("hosted").limiter.total == DEFAULT_PROVIDER_CONCURRENCY
    assert pool._provider("gguf").limiter.total == IN_PROCESS_CONCURRENCY
    assert pool._provider("limited").limiter.total == 2
