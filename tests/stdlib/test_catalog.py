"""std.models: a dated catalog whose every model is priced, sized, skilled (as estimates) and timed;
the names the rest of bmad relies on stay; the seed's aliases resolve."""

from __future__ import annotations

import re

import pytest

from bmad.compiler.compile import compile_file

from stdlib_support import stdlib_path

STABLE = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "gemini-flash", "gemini-pro", "local")


@pytest.fixture(scope="module")
def catalog():
    result = compile_file(stdlib_path("models"))
    assert result.ok and not result.diagnostics
    return result.program


def test_header_dates_prices_and_marks_skills_as_estimates():
    header = stdlib_path("models").read_text(encoding="utf-8").split("provider openai", 1)[0]
    assert re.search(r"PRICES AS OF \d{4}-\d{2}", header)
    assert "SKILLS ARE ESTIMATES" in header
    for basis in ("SWE-bench", "GPQA", "MMLU"):
        assert basis in header


def test_every_model_is_complete(catalog):
    for model in catalog.models:
        assert model.price is not None and model.context and model.skills and model.latency, model.name
        assert all(0 <= s.score <= 1 for s in model.skills)


def test_stable_names_and_the_seeds_aliases(catalog):
    names = {m.name for m in catalog.models}
    assert set(STABLE) <= names
    assert {"openai", "anthropic", "gemini", "mistral", "deepseek", "together", "groq"} <= {
        p.name for p in catalog.providers}
    for alias, model in {"claude": "claude-sonnet", "gpt4": "gpt-4o", "gemini": "gemini-flash",
                         "haiku": "claude-haiku", "mini": "gpt-4o-mini", "opus": "claude-opus",
                         "deepseek": "deepseek-chat", "llama": "llama-4-maverick"}.items():
        assert catalog.model(alias).name == model


def test_openai_compatible_providers_declare_their_endpoint_and_key_variable(catalog):
    for name in ("mistral", "deepseek", "together", "groq"):
        provider = catalog.provider(name)
        assert provider.kind == "openai" and provider.base_url.startswith("https://")
        assert provider.api_key_env and provider.api_key_env.endswith("_API_KEY")


def test_ollama_module_is_local_and_free():
    result = compile_file(stdlib_path("ollama"))
    assert result.ok and not result.diagnostics
    assert result.program.provider("ollama").base_url == "http://127.0.0.1:11434"
    assert all(m.price.input_per_m == 0 for m in result.program.models if m.provider.name == "ollama")
