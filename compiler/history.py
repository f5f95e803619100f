"""Observed model behaviour per (model, capability): what past runs measured, for the router.

The runtime fills a `ModelHistory` from its journal and hands it to the passes through their
context (the compiler never imports the runtime). When present (and `--no-history` is not given),
a measured value overrides the catalog's estimate for the same model and capability. Tasks that
need no particular capability look up `ANY_CAPABILITY`, which the runtime fills with the model's
observations over all tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANY_CAPABILITY = "*"


@dataclass(frozen=True, slots=True)
class Observation:
    """Aggregates over `samples` calls of one model on one capability."""

    quality: float | None = None  # mean judged/agreement quality, 0..1
    latency_s: float | None = None  # mean wall time of one call
    failure_rate: float | None = None  # failed calls / calls, 0..1
    cost_usd: float | None = None  # mean cost of one call
    samples: int = 0
    quality_samples: int = 0  # how many scores `quality` is the mean of (0: not told, take `samples`)


@dataclass(frozen=True, slots=True)
class ModelHistory:
    """Observations keyed by (model name, capability); `ANY_CAPABILITY` holds a model's overall figures."""

    observations: dict[tuple[str, str], Observation] = field(default_factory=dict)
    min_samples: int = 3  # fewer samples than this are noise: fall back to the catalog
    # capability -> (agreement before escalating, 1/0 the decision matched the escalation's answer)
    # for each consensus that escalated: what `quality >= auto` learns its bar from
    calibration: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)

    def observation(self, model: str, capability: str) -> Observation | None:
        obs = self.observations.get((model, capability))
        if obs is None or obs.samples < self.min_samples:
            return None
        return obs

    def quality(self, model: str, capability: str) -> float | None:
        obs = self.observation(model, capability)
        return obs.quality if obs else None

    def latency(self, model: str, capabilities: tuple[str, ...]) -> float | None:
        """Mean call latency over the needed capabilities (or the model's overall figure)."""
        values = [o.latency_s for c in capabilities or (ANY_CAPABILITY,)
                  if (o := self.observation(model, c)) and o.latency_s is not None]
        if not values and capabilities:
            overall = self.observation(model, ANY_CAPABILITY)
            values = [overall.latency_s] if overall and overall.latency_s is not None else []
        return sum(values) / len(values) if values else None

    def failure_rate(self, model: str, capabilities: tuple[str, ...]) -> float | None:
        values = [o.failure_rate for c in capabilities or (ANY_CAPABILITY,)
                  if (o := self.observation(model, c)) and o.failure_rate is not None]
        return max(values) if values else None

    def learned_bar(self, capability: str, target: float, min_samples: int = 20) -> float | None:
        """The lowest agreement at which past decisions (at or above it) matched the escalation's
        answer at least `target` of the time, over at least `min_samples` of them; None when no
        bar qualifies (or too little is known): every decision should escalate."""
        records = sorted(self.calibration.get(capability, ()), key=lambda r: -r[0])
        best: float | None = None
        matched = 0.0
        for i, (agreement, match) in enumerate(records):
            matched += match
            n = i + 1
            if n < len(records) and records[i + 1][0] == agreement:
                continue  # a bar takes every decision at its agreement
            if n >= min_samples and matched / n >= target:
                best = agreement
        return best

    def models(self) -> set[str]:
        return {m for (m, _c) in self.observations}

    @property
    def empty(self) -> bool:
        return not self.observations and not self.calibration
