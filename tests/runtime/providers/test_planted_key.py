"""A planted API key never shows in any exception text, repr, response object or health report,
whether calls succeed or fail, even when the server echoes the key back in its error messages."""

from __future__ import annotations

import json

import anyio
import pytest

from bmad.compiler import ir
from bmad.runtime.providers import base, keys
from bmad.runtime.providers.registry import ProviderOptions, build_provider

from .conftest import PLANTED_KEY

KEY_VAR = "BMAD_TEST_PLANTED_KEY"
OUTCOMES = ["ok", "rate_limited", "server_error", "context", "content_filter", "malformed",
            "truncated", "echo_key", "slow"]


def everything_about(obj) -> str:
    """Every string we can reach from an exception or a response."""
    seen = [str(obj), repr(obj)]
    if isinstance(obj, BaseException):
        seen += [str(a) for a in obj.args] + [json.dumps(vars(obj), default=repr)]
        link = obj.__cause__ or obj.__context__
        while link is not None:
            seen += [str(link), repr(link)]
            link = link.__cause__ or link.__context__
    elif isinstance(obj, base.CompletionResponse):
        seen.append(json.dumps(obj.raw, default=repr))
    return "\n".join(seen)


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "ollama"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_the_key_never_leaks(keyed_server, monkeypatch, kind, stream):
    monkeypatch.setenv(KEY_VAR, PLANTED_KEY)
    decl = ir.Provider(name=f"keyed-{kind}", kind=kind, base_url=keyed_server.base_url(kind),
                       api_key_env=KEY_VAR, timeout_s=5)
    provider = build_provider(decl, options=ProviderOptions())
    texts = [repr(provider)]
    outcomes = {}
    for model in OUTCOMES:
        req = base.CompletionRequest(model_id=model, model_name=model, stream=stream,
                                     messages=(base.Message("user", "hello there"),),
                                     timeout_s=0.5 if model == "slow" else None)
        try:
            response = anyio.run(provider.complete, req)
            texts.append(everything_about(response))
            outcomes[model] = "ok"
        except base.ProviderError as exc:
            texts.append(everything_about(exc))
            outcomes[model] = exc.kind
    texts.append(json.dumps(anyio.run(provider.check).to_json()))
    assert outcomes["ok"] == "ok"  # the key was sent and accepted
    assert outcomes["echo_key"] == "bad_request"
    blob = "\n".join(texts)
    assert PLANTED_KEY not in blob
    assert keys.REDACTED in blob  # the echoed key was there, masked


def test_a_server_echoing_a_rejected_key_is_masked(fault_server, keyed_server, monkeypatch):
    # The keyed server expects PLANTED_KEY; send another and let it echo that one back.
    other = "sk-another-secret-key-9876543210"
    monkeypatch.setenv(KEY_VAR, other)
    decl = ir.Provider(name="wrong", kind="openai", base_url=keyed_server.base_url("openai"),
                       api_key_env=KEY_VAR)
    with pytest.raises(base.Auth) as info:
        anyio.run(build_provider(decl).complete, base.CompletionRequest(
            model_id="ok", messages=(base.Message("user", "hi"),)))
    assert other not in everything_about(info.value)


def test_redact_masks_loaded_keys_and_credential_shapes():
    keys.remember_secret("my-very-secret-value")
    text = ("my-very-secret-value Authorization: Bearer abcdefghijklmnop "
            "https://x/y?key=AIzaSyA1234567890123456789012 x-api-key: zzzzzzzzzzzz")
    out = keys.redact(text)
    for secret in ("my-very-secret-value", "abcdefghijklmnop", "AIzaSyA1234567890123456789012",
                   "zzzzzzzzzzzz"):
        assert secret not in out


def test_bmad_toml_names_variables_and_refuses_keys(tmp_path):
    good = tmp_path / "bmad.toml"
    good.write_text('[providers.openai]\napi_key_env = "MY_OPENAI"\nbase_url = "http://x/v1"\n')
    config = keys.KeyConfig.load(good)
    assert keys.key_variables("openai", "openai", None, config) == ("MY_OPENAI",)
    # this machine's bmad.toml wins over the declaration (it re-keys the standard catalog)
    assert keys.key_variables("openai", "openai", "DECLARED", config) == ("MY_OPENAI",)
    assert keys.key_variables("other", "openai", "DECLARED", config) == ("DECLARED",)
    assert keys.key_variables("other", "anthropic", None, config) == ("ANTHROPIC_API_KEY",)
    bad = tmp_path / "bad.toml"
    bad.write_text('[providers.openai]\napi_key = "sk-inline"\n')
    with pytest.raises(keys.KeyConfigError, match="holds a key") as info:
        keys.KeyConfig.load(bad)
    assert "sk-inline" not in str(info.value)
