"""The model catalog: what each declared model costs, knows, and takes, and whether it can run here.

Built from a Program's `model` and `provider` declarations plus the environment. A model is
*available* when its provider can be reached from this machine: its key variable is set (only
whether it is set is recorded, never the value), its local extra is installed (llama.cpp), its
replay data exists. `provider_mode="sim"` makes every model available and simulated (used by
`bmad plan --provider sim` and by `bmad check`'s static feasibility plan).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from bmad.compiler import ir
from bmad.compiler.history import ANY_CAPABILITY, ModelHistory

# The embedded model every program can fall back on (stdlib/models.bmad declares it).
LOCAL_MODEL = "local"

# Used when a model declares no latency profile: a typical hosted chat model's time to first
# token plus its per-token decode time (documented in docs/planning.md).
DEFAULT_LATENCY_BASE_S = 1.0
DEFAULT_LATENCY_PER_TOKEN_S = 0.02

# Used when a provider declares no `limits { concurrent N }`.
DEFAULT_PROVIDER_CONCURRENCY = 4

# Providers that run their models in this process, one call at a time, whatever `limits` says:
# llama.cpp objects aren't thread-safe, so runtime/providers/llama_cpp.py runs each model under a
# lock. The plan counts that (latency) and carries it as the provider's concurrency, which the
# runtime's provider slots take from the plan (a simulated run of the plan queues the same way).
IN_PROCESS_KINDS = frozenset({"llama_cpp"})
IN_PROCESS_CONCURRENCY = 1


def provider_concurrency(provider: ir.Provider | None) -> int:
    """How many calls the runtime makes at once to `provider`'s models (`IN_PROCESS_KINDS`: one)."""
    if provider is not None and provider.kind in IN_PROCESS_KINDS:
        return IN_PROCESS_CONCURRENCY
    limits = provider.limits if provider is not None else None
    return limits.concurrent if limits and limits.concurrent else DEFAULT_PROVIDER_CONCURRENCY


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One model as the router sees it."""

    name: str
    provider: str
    provider_kind: str | None
    model_id: str
    price_input_per_m: float | None  # None: unknown price (never counted as $0)
    price_output_per_m: float | None
    context: int | None
    skills: dict[str, float]
    latency_base_s: float
    latency_per_token_s: float
    latency_declared: bool
    available: bool
    unavailable_reason: str | None = None
    simulated: bool = False
    key_env: str | None = None  # the variable's name; whether it is set is in `available`
    concurrency: int = DEFAULT_PROVIDER_CONCURRENCY
    limits_declared: bool = False

    @property
    def priced(self) -> bool:
        return self.price_input_per_m is not None and self.price_output_per_m is not None

    @property
    def in_process(self) -> bool:
        """Run in this process (`IN_PROCESS_KINDS`): one call at a time, no rate limit to meet."""
        return self.provider_kind in IN_PROCESS_KINDS

    def covers(self, needs: tuple[str, ...]) -> bool:
        return all(n in self.skills for n in needs)

    def expected_quality(self, needs: tuple[str, ...], history: ModelHistory | None = None) -> float | None:
        """The weakest needed skill (history first); with no needs, the mean skill. None: unknown."""
        caps = needs or (ANY_CAPABILITY,)
        values: list[float] = []
        for cap in caps:
            measured = history.quality(self.name, cap) if history else None
            if measured is not None:
                values.append(measured)
            elif cap == ANY_CAPABILITY:
                if not self.skills:
                    return None
                values.append(sum(self.skills.values()) / len(self.skills))
            elif cap in self.skills:
                values.append(self.skills[cap])
            else:
                return None
        return min(values)

    def call_latency(self, output_tokens: float, needs: tuple[str, ...] = (),
                     history: ModelHistory | None = None) -> float:
        measured = history.latency(self.name, needs) if history else None
        if measured is not None:
            return measured
        return self.latency_base_s + self.latency_per_token_s * output_tokens

    def call_cost(self, input_tokens: float, output_tokens: float) -> float | None:
        if not self.priced:
            return None
        return (input_tokens * self.price_input_per_m + output_tokens * self.price_output_per_m) / 1e6

    def to_json(self) -> dict:
        return {
            "name": self.name, "provider": self.provider, "provider_kind": self.provider_kind,
            "model_id": self.model_id, "price_input_per_m": self.price_input_per_m,
            "price_output_per_m": self.price_output_per_m, "context": self.context,
            "skills": dict(sorted(self.skills.items())), "latency_base_s": self.latency_base_s,
            "latency_per_token_s": self.latency_per_token_s, "available": self.available,
            "unavailable_reason": self.unavailable_reason, "simulated": self.simulated,
            "concurrency": self.concurrency,
        }


@dataclass(frozen=True, slots=True)
class ModelCatalog:
    entries: dict[str, CatalogEntry] = field(default_factory=dict)
    provider_mode: str | None = None

    def get(self, name: str) -> CatalogEntry | None:
        return self.entries.get(name)

    def __iter__(self):
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def available(self) -> list[CatalogEntry]:
        return [e for e in self.entries.values() if e.available]


def _llama_cpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def _availability(model: ir.Model, provider: ir.Provider | None, environment: Mapping[str, str],
                  provider_mode: str | None) -> tuple[bool, str | None, bool]:
    """(available, reason when not, simulated)."""
    if provider is None:
        return False, f"its provider `{model.provider.name}` is not declared", False
    if provider_mode == "sim" or provider.kind == "sim":
        return True, None, True
    if provider.kind == "replay":
        if provider.data and not Path(provider.data).exists():
            return False, f"replay data {provider.data} does not exist", False
        return True, None, False
    if provider.kind == "llama_cpp":
        if not _llama_cpp_installed():
            return False, "the local extra is not installed (pip install 'bmad[local]')", False
        if model.path and not Path(model.path).exists():
            return False, f"the model file {model.path} does not exist", False
        return True, None, False
    if provider.api_key_env and not environment.get(provider.api_key_env):
        return False, f"{provider.api_key_env} is not set", False
    return True, None, False


def build_catalog(program: ir.Program, *, environment: Mapping[str, str] | None = None,
                  provider_mode: str | None = None) -> ModelCatalog:
    """The catalog of every model `program` declares, with availability from `environment`."""
    env = os.environ if environment is None else environment
    providers = {p.name: p for p in program.providers}
    entries: dict[str, CatalogEntry] = {}
    for m in program.models:
        provider = providers.get(m.provider.name)
        available, reason, simulated = _availability(m, provider, env, provider_mode)
        limits = provider.limits if provider else None
        entries[m.name] = CatalogEntry(
            name=m.name,
            provider=m.provider.name,
            provider_kind=provider.kind if provider else None,
            model_id=m.id or m.name,
            price_input_per_m=m.price.input_per_m if m.price else None,
            price_output_per_m=m.price.output_per_m if m.price else None,
            context=m.context,
            skills={s.name: s.score for s in m.skills},
            latency_base_s=m.latency.base_s if m.latency else DEFAULT_LATENCY_BASE_S,
            latency_per_token_s=m.latency.per_token_s if m.latency else DEFAULT_LATENCY_PER_TOKEN_S,
            latency_declared=m.latency is not None,
            available=available,
            unavailable_reason=reason,
            simulated=simulated,
            key_env=provider.api_key_env if provider else None,
            concurrency=provider_concurrency(provider),
            limits_declared=limits is not None,
        )
    return ModelCatalog(entries, provider_mode)


def embedded_local_model() -> tuple[ir.Provider, ir.Model]:
    """The embedded `local` model and its provider, as the standard catalog declares them.

    Read from `stdlib/models.bmad` when it compiles; otherwise the same declaration built here
    (Gemma 3 270M run in-process by llama.cpp: free, small context, modest skills).
    """
    stdlib_models = Path(__file__).resolve().parent.parent / "stdlib" / "models.bmad"
    if stdlib_models.exists():
        try:
            from bmad.compiler.compile import compile_file  # the front end; imported lazily

            result = compile_file(str(stdlib_models))
            program = result.program
            model = program.model(LOCAL_MODEL) if program else None
            provider = program.provider(model.provider.name) if model else None
            if model and provider:
                return provider, model
        except Exception:  # noqa: BLE001 - a broken stdlib must not stop planning
            pass
    provider = ir.Provider(name=LOCAL_MODEL, kind="llama_cpp")
    model = ir.Model(
        name=LOCAL_MODEL,
        provider=ir.Name(LOCAL_MODEL),
        id="gemma-3-270m-it",
        price=ir.Price(0.0, 0.0),
        context=32768,
        skills=(ir.Skill("writing", 0.35), ir.Skill("summarization", 0.35),
                ir.Skill("reasoning", 0.2), ir.Skill("code", 0.15)),
        latency=ir.Latency(0.2, 0.02),
    )
    return provider, model
