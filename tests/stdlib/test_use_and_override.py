"""`use std.NAME` brings a pattern into scope; a user's workflow of the same name is a clear error;
a user's own models and providers override the standard catalog's."""

from __future__ import annotations

from stdlib_support import compile_text


def test_a_workflow_named_like_a_used_pattern_is_a_clear_error(tmp_path):
    result = compile_text(tmp_path, """
use std.code_review

workflow code_review {
  input diff: text
  task t { prompt "Review {{ diff }}" }
  output t
}
""")
    errors = [d for d in result.diagnostics if d.is_error]
    assert [d.code for d in errors] == ["BMAD-E056"]
    (clash,) = errors
    assert clash.span.file.endswith("main.bmad") and clash.span.line == 4
    assert "use std.code_review" in clash.message and "my_code_review" in clash.hint
    assert clash.related[0].span.file == "<std>/code_review.bmad"


def test_without_use_the_same_name_is_just_the_users_workflow(tmp_path):
    result = compile_text(tmp_path, """
workflow code_review {
  input diff: text
  task t { prompt "Review {{ diff }}" }
  output t
}
""")
    assert result.ok


def test_users_models_and_providers_override_the_catalog(tmp_path):
    result = compile_text(tmp_path, """
use std.models

provider openai {
  kind openai
  base_url "http://127.0.0.1:9999/v1"
  api_key env PROXY_KEY
}

model gpt-4o {
  provider openai
  price input $1 output $2 per 1M
  context 64k
}

model my-claude {
  provider anthropic
  id "claude-sonnet-4-5"
  price input $3 output $15 per 1M
  aliases [claude]
}

workflow w {
  task t { prompt "hello" model claude }
  output t
}
""")
    assert result.ok, [f"{d.code} {d.message}" for d in result.diagnostics]
    program = result.program
    assert [m.name for m in program.models].count("gpt-4o") == 1
    mine = program.model("gpt-4o")
    assert (mine.price.input_per_m, mine.context) == (1.0, 64_000)
    assert mine.span.file.endswith("main.bmad")
    assert mine.aliases == ()  # the catalog's `gpt4` alias went with the catalog's declaration
    openai = program.provider("openai")
    assert openai.base_url == "http://127.0.0.1:9999/v1" and openai.api_key_env == "PROXY_KEY"
    # catalog models of that provider now go through the user's provider declaration
    assert program.model("gpt-4o-mini").provider.name == "openai"
    # the alias the user claimed moved from the catalog's claude-sonnet to the user's model
    assert program.model("claude").name == "my-claude"
    assert "claude" not in program.model("claude-sonnet").aliases


def test_a_pattern_works_with_the_users_own_models(tmp_path):
    result = compile_text(tmp_path, """
use std.knowledge_extraction

provider lab { kind sim }
model small { provider lab price input $0.1 output $0.2 per 1M skills { extraction 0.8, analysis 0.7, summarization 0.8 } }
model large { provider lab price input $1 output $2 per 1M skills { extraction 0.9, analysis 0.9, summarization 0.9 } }

workflow w {
  input doc: text = "Ada Lee founded Acme in 1999."
  task facts = knowledge_extraction(source: doc)
  output facts
}
""")
    assert result.ok, [f"{d.code} {d.message}" for d in result.diagnostics]
    assert {m.name for m in result.program.models} == {"small", "large", "local"}
