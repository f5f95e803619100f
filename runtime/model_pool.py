"""The models a run may call: each with its provider object, price, limiters, rate limits and
circuit breaker, built once from the plan's program (and shared by every task of the run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from bmad.compiler import ir
from bmad.compiler.catalog import provider_concurrency
from bmad.runtime.consensus import vote_weights
from bmad.runtime.providers import base
from bmad.runtime.rate_limits import ProviderRateLimit
from bmad.runtime.retry import CircuitBreaker
from bmad.runtime.slots import Slots


class ModelUnknown(Exception):
    pass


@dataclass(slots=True)
class ProviderSlot:
    """What all models of one provider share."""

    name: str
    client: base.Provider
    limiter: Slots
    rate_limit: ProviderRateLimit
    breaker: CircuitBreaker
    timeout_s: float | None
    kind: str = ""  # the provider declaration's kind: openai, anthropic, sim...
    # The client answers without ever suspending (the sim at latency scale 0): a timeout scope
    # around its call could never fire, so the caller skips it (the sim still applies
    # `timeout_s` to its simulated latency itself).
    instant: bool = False


@dataclass(slots=True)
class ModelSlot:
    name: str
    model_id: str
    decl: ir.Model
    provider: ProviderSlot
    input_per_m: float | None
    output_per_m: float | None
    latency_base_s: float | None
    latency_per_token_s: float | None
    # adaptive re-routing: observed / expected latency, smoothed
    latency_ratio: float = 1.0
    latency_samples: int = 0
    skills: dict[str, float] = field(default_factory=dict)

    @property
    def priced(self) -> bool:
        return self.input_per_m is not None and self.output_per_m is not None

    def cost(self, input_tokens: int, output_tokens: int) -> float | None:
        if self.input_per_m is None or self.output_per_m is None:
            return None
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1_000_000

    def expected_latency(self, output_tokens: int) -> float | None:
        if self.latency_base_s is None:
            return None
        return self.latency_base_s + (self.latency_per_token_s or 0.0) * output_tokens

    def observe_latency(self, observed_s: float, output_tokens: int) -> None:
        expected = self.expected_latency(output_tokens)
        if not expected:
            return
        ratio = observed_s / expected
        self.latency_samples += 1
        self.latency_ratio = ratio if self.latency_samples == 1 else 0.7 * self.latency_ratio + 0.3 * ratio

    def skill(self, needs: tuple[str, ...]) -> float | None:
        if not self.skills:
            return None
        if needs:
            scores = [self.skills[n] for n in needs if n in self.skills]
            return sum(scores) / len(scores) if scores else None
        return sum(self.skills.values()) / len(self.skills)


ProviderFactory = Callable[[ir.Provider], base.Provider]


class ModelPool:
    def __init__(self, program: ir.Program, factory: ProviderFactory, *,
                 provider_concurrency: dict[str, int] | None = None,
                 breaker_threshold: int = 5, breaker_cooldown_s: float = 30.0,
                 sim: bool = False):
        self.program = program
        self.factory = factory
        self.sim = sim
        self.provider_concurrency = provider_concurrency or {}
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown_s = breaker_cooldown_s
        self.providers: dict[str, ProviderSlot] = {}
        self.models: dict[str, ModelSlot] = {}

    def get(self, name: str) -> ModelSlot:
        slot = self.models.get(name)
        if slot is None:
            slot = self._build(name)
            self.models[name] = slot
        return slot

    def vote_weights(self, models: Sequence[str], planned: Iterable[Any] = (),
                     needs: tuple[str, ...] = ()) -> dict[str, float]:
        """`consensus weighted`'s vote per model (`consensus.vote_weights`): the quality the plan
        expects of it (`planned`: the TaskPlan's candidates), else its declared skill for `needs`."""
        return vote_weights(models, planned, lambda m: self.get(m).skill(needs))

    def _provider(self, name: str) -> ProviderSlot:
        slot = self.providers.get(name)
        if slot is not None:
            return slot
        decl = self.program.provider(name)
        if decl is None:
            if not self.sim:
                raise ModelUnknown(f"provider `{name}` is not declared")
            decl = ir.Provider(name=name, kind="sim")
        limits = decl.limits
        # the plan's figure, else the planner's own rule (a provider only a fallback uses isn't in
        # the plan's table): one source, so the runtime runs as the plan's timing assumed
        concurrent = self.provider_concurrency.get(name) or provider_concurrency(decl)
        client = self.factory(decl)
        slot = ProviderSlot(name=name, client=client, limiter=Slots(concurrent),
                            rate_limit=ProviderRateLimit(limits),
                            breaker=CircuitBreaker(self.breaker_threshold, self.breaker_cooldown_s),
                            timeout_s=decl.timeout_s, kind=decl.kind,
                            instant=bool(getattr(client, "answers_instantly", False)))
        self.providers[name] = slot
        return slot

    def _build(self, name: str) -> ModelSlot:
        decl = self.program.model(name)
        if decl is None:
            raise ModelUnknown(f"model `{name}` is not declared in the plan's catalog")
        provider = self._provider(decl.provider.name)
        return ModelSlot(
            name=decl.name, model_id=decl.id or decl.name, decl=decl, provider=provider,
            input_per_m=decl.price.input_per_m if decl.price else None,
            output_per_m=decl.price.output_per_m if decl.price else None,
            latency_base_s=decl.latency.base_s if decl.latency else None,
            latency_per_token_s=decl.latency.per_token_s if decl.latency else None,
            skills={s.name: s.score for s in decl.skills})

    async def aclose(self) -> None:
        for slot in self.providers.values():
            try:
                await slot.client.aclose()
            except Exception:
                pass
