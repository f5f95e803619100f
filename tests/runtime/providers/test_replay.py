"""The replay provider: recorded answers, costs and usage from RouterBench CSVs and JSONL files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import anyio
import pytest

from bmad.compiler import ir
from bmad.runtime.providers import base
from bmad.runtime.providers.registry import ProviderOptions, build_provider
from bmad.runtime.providers.replay import ReplayProvider

ROUTERBENCH = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "routerbench"


def ask(provider, model: str, prompt: str = "", **metadata) -> base.CompletionResponse:
    req = base.CompletionRequest(model_id=model, model_name=model,
                                 messages=(base.Message("user", prompt),), metadata=metadata)
    return anyio.run(provider.complete, req)


def first_row(name: str) -> dict[str, str]:
    csv.field_size_limit(10**9)
    with (ROUTERBENCH / name).open(newline="", encoding="utf-8") as fh:
        return next(csv.DictReader(fh))


@pytest.mark.skipif(not ROUTERBENCH.exists(), reason="RouterBench data not present")
def test_routerbench_layout_is_read_directly_by_prompt_id_and_text():
    row = first_row("mbpp_train.csv")
    provider = ReplayProvider("rb", ROUTERBENCH / "mbpp_train.csv")
    r = ask(provider, "gpt-4-1106-preview", prompt_id=row["sample_id"])
    assert r.cost_usd == pytest.approx(float(row["gpt-4-1106-preview|total_cost"]))
    assert r.text and not r.text.startswith("['")  # the list literal is unwrapped
    assert r.raw["recorded_quality"] == float(row["gpt-4-1106-preview"])
    assert r.raw["tokens_estimated"] and r.output_tokens == max(1, len(r.text) // 4)
    # By text: the prompt column's literal unwrapped, whitespace-insensitive, and embedded.
    question = "Write a function to remove all elements from a given list present in another list."
    by_text = ask(provider, "gpt-4-1106-preview", "  " + question.replace(" ", "  "))
    assert by_text.text == r.text
    rendered = ask(provider, "gpt-4-1106-preview", f"Answer carefully.\n\n{question}\n\nThanks")
    assert rendered.text == r.text
    assert "gpt-4-1106-preview" in provider.load_index().models
    assert len(provider.load_index().models) == 11


@pytest.mark.skipif(not ROUTERBENCH.exists(), reason="RouterBench data not present")
def test_a_folder_of_routerbench_files_and_registry_wiring():
    decl = ir.Provider(name="rb", kind="replay", data=str(ROUTERBENCH))
    model = ir.Model(name="mixtral", provider=ir.Name("rb"), id="mistralai/mixtral-8x7b-chat")
    provider = build_provider(decl, options=ProviderOptions(models=(model,)))
    row = first_row("winograde_train.csv")
    req = base.CompletionRequest(model_id="mistralai/mixtral-8x7b-chat", model_name="mixtral",
                                 messages=(base.Message("user", "x"),),
                                 metadata={"prompt_id": row["sample_id"]})
    r = anyio.run(provider.complete, req)
    assert r.cost_usd == pytest.approx(float(row["mistralai/mixtral-8x7b-chat|total_cost"]))
    assert provider.load_index().count > 2225  # three files, many models per prompt


def test_jsonl_long_layout_with_usage_and_a_wildcard_model(tmp_path):
    data = tmp_path / "rec.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"prompt_id": "p1", "prompt": "What is 2+2?", "model": "m1", "response": "4",
         "cost_usd": 0.001, "input_tokens": 7, "output_tokens": 1, "latency_s": 0.3},
        {"prompt_id": "p1", "prompt": "What is 2+2?", "model": "m2", "response": "four"},
        {"prompt": "Name a colour.", "response": "blue"},
    ]) + "\n")
    provider = ReplayProvider("rec", data)
    r = ask(provider, "m1", prompt_id="p1")
    assert (r.text, r.cost_usd, r.input_tokens, r.output_tokens, r.latency_s) == \
        ("4", 0.001, 7, 1, 0.3)
    assert not r.raw["tokens_estimated"]
    assert ask(provider, "m2", "What is 2+2?").cost_usd is None  # not recorded: unknown, not $0
    assert ask(provider, "anything", "Name a colour.").text == "blue"
    with pytest.raises(base.BadRequest, match="no recorded response from model"):
        ask(provider, "m3", prompt_id="p1")
    with pytest.raises(base.BadRequest, match="no recorded response"):
        ask(provider, "m1", "never recorded")


def test_csv_long_layout(tmp_path):
    data = tmp_path / "rec.csv"
    data.write_text("id,prompt,model,text,cost\nq1,hello,m,hi there,0.5\n")
    assert ask(ReplayProvider("r", data), "m", prompt_id="q1").cost_usd == 0.5


def test_missing_or_malformed_data_is_unavailable(tmp_path):
    with pytest.raises(base.Unavailable, match="does not exist"):
        ask(ReplayProvider("r", tmp_path / "nope.csv"), "m", "x")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(base.Unavailable, match="bad.jsonl:1"):
        ask(ReplayProvider("r", bad), "m", "x")
    with pytest.raises(base.Unavailable, match="no `data`"):
        build_provider(ir.Provider(name="r", kind="replay"))
