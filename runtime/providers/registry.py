"""Build a provider object from its IR declaration: the one place that knows every protocol module.

`build_provider(decl, mode=..., options=...)` returns something implementing `base.Provider`.
With `mode="sim"` every provider becomes the sim provider (`--provider sim`), priced and timed from
the catalog handed in through `options.models`. Protocol modules are imported lazily, so a missing
optional dependency (llama-cpp-python) only matters when that provider is used.
Providers know no IR; this module is the bridge that turns IR nodes into plain settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from bmad.compiler import ir
from bmad.runtime.providers import base
from bmad.runtime.providers.keys import KeyConfig
from bmad.runtime.providers.sim import ModelProfile, SimProvider, SimSettings

MODES = (None, "real", "sim")


@dataclass(frozen=True, slots=True)
class ProviderOptions:
    """Everything beyond the declaration that building a provider may need."""

    models: tuple[ir.Model, ...] = ()  # the catalog (sim: prices, latency, skills; llama_cpp: paths)
    sim: SimSettings = field(default_factory=SimSettings)
    config: KeyConfig | None = None  # bmad.toml: key variable names and base_url overrides
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0  # default per-call read timeout when the provider declares none
    cache_dir: str | None = None  # llama_cpp: where the embedded model is assembled


def model_profile(model: ir.Model) -> ModelProfile:
    """The sim's view of a catalog model."""
    return ModelProfile(
        name=model.name,
        model_id=model.id or model.name,
        input_per_m=model.price.input_per_m if model.price else None,
        output_per_m=model.price.output_per_m if model.price else None,
        context=model.context,
        skills={s.name: s.score for s in model.skills},
        latency_base_s=model.latency.base_s if model.latency else None,
        latency_per_token_s=model.latency.per_token_s if model.latency else None,
    )


def model_profiles(models: Iterable[ir.Model]) -> dict[str, ModelProfile]:
    profiles: dict[str, ModelProfile] = {}
    for m in models:
        p = model_profile(m)
        profiles[m.name] = p
        for alias in m.aliases:
            profiles.setdefault(alias, p)
    return profiles


def build_provider(provider: ir.Provider, *, mode: str | None = None,
                   options: ProviderOptions | None = None) -> base.Provider:
    """A ready provider for `provider`; raises `base.Unavailable` with advice when it can't be."""
    options = options or ProviderOptions()
    if mode not in MODES:
        raise ValueError(f"unknown provider mode {mode!r}; expected one of {MODES[1:]}")
    own_models = tuple(m for m in options.models if m.provider.name == provider.name)
    if mode == "sim" or provider.kind == "sim":
        # Every model is priced and timed from the whole catalog (a model's provider name may not
        # match when a runtime re-routes), own models first.
        profiles = model_profiles(options.models)
        profiles.update(model_profiles(own_models))
        return SimProvider(name=provider.name, profiles=profiles, settings=options.sim)

    kind = provider.kind
    timeout = provider.timeout_s or options.read_timeout_s
    # bmad.toml is this machine's setting: its base_url wins over the declaration's (a proxy, an
    # Azure endpoint for the standard `openai` provider)
    base_url = provider.base_url
    if options.config is not None:
        base_url = options.config.base_urls.get(provider.name, base_url)

    if kind == "replay":
        from bmad.runtime.providers.replay import ReplayProvider
        if not provider.data:
            raise base.Unavailable(
                f"provider {provider.name!r} (kind replay) has no `data` file of recorded "
                "responses", provider=provider.name)
        return ReplayProvider(name=provider.name, path=provider.data,
                              models={m.name: (m.id or m.name) for m in own_models})
    if kind == "llama_cpp":
        from bmad.runtime.providers.llama_cpp import LlamaCppProvider
        paths = {m.name: m.path for m in own_models}
        paths.update({(m.id or m.name): m.path for m in own_models})
        return LlamaCppProvider(name=provider.name, model_paths=paths,
                                cache_dir=Path(options.cache_dir) if options.cache_dir else None)

    from bmad.runtime.providers import keys
    config = options.config
    if config is None:  # ./bmad.toml (or $BMAD_CONFIG) may name this provider's key variable
        try:
            config = keys.KeyConfig.load()
        except keys.KeyConfigError as exc:  # a key in the file, above all (BMAD-E400)
            from bmad.compiler.settings import config_hint

            raise keys.ConfigUnusable(str(exc), provider=provider.name,
                                      hint=config_hint(str(exc))) from None
    base_url = config.base_urls.get(provider.name, base_url)
    variables = keys.key_variables(provider.name, kind, provider.api_key_env, config)
    keys.check_key_variables(variables, provider=provider.name)  # BMAD-E401, before any call
    if base_url is not None:
        from bmad.runtime.providers.transport import base_url_problem

        problem = base_url_problem(base_url)
        if problem is not None:
            raise base.Misconfigured(f"provider {provider.name!r}: {problem}",
                                     provider=provider.name)
    settings = dict(name=provider.name, base_url=base_url, key_variables=variables,
                    connect_timeout_s=options.connect_timeout_s, read_timeout_s=timeout,
                    prices=_prices(own_models),
                    key_required=provider.api_key_env is not None,
                    allow_insecure_http=provider.name in config.insecure_http)
    if kind == "openai":
        from bmad.runtime.providers.openai import OpenAIProvider
        return OpenAIProvider(**settings)
    if kind == "anthropic":
        from bmad.runtime.providers.anthropic import AnthropicProvider
        return AnthropicProvider(**settings)
    if kind == "gemini":
        from bmad.runtime.providers.gemini import GeminiProvider
        return GeminiProvider(**settings)
    if kind == "ollama":
        from bmad.runtime.providers.ollama import OllamaProvider
        return OllamaProvider(**settings)
    raise base.Unavailable(f"provider {provider.name!r} has an unknown kind {kind!r}",
                           provider=provider.name)


def build_providers(program: ir.Program, *, mode: str | None = None,
                    options: ProviderOptions | None = None) -> dict[str, base.Provider]:
    """One provider per declaration in `program` (the catalog defaults to the program's models).

    Raises `base.Unavailable` for the first declaration that can't be built (e.g. replay without
    a data file); building never touches the network, and llama_cpp loads its model on first use.
    """
    options = options or ProviderOptions()
    if not options.models:
        options = ProviderOptions(models=program.models, sim=options.sim, config=options.config,
                                  connect_timeout_s=options.connect_timeout_s,
                                  read_timeout_s=options.read_timeout_s,
                                  cache_dir=options.cache_dir)
    built: dict[str, base.Provider] = {}
    for decl in program.providers:
        built[decl.name] = build_provider(decl, mode=mode, options=options)
    return built


def _prices(models: Iterable[ir.Model]) -> dict[str, tuple[float, float]]:
    """USD per 1M (input, output) by provider model id and by catalog name; unpriced left out."""
    prices: dict[str, tuple[float, float]] = {}
    for m in models:
        if m.price is not None:
            pair = (m.price.input_per_m, m.price.output_per_m)
            prices[m.id or m.name] = pair
            prices[m.name] = pair
    return prices
