"""The simulated provider: deterministic, catalog-shaped answers with no network and no model.

`--provider sim` (or `kind sim`) runs any workflow with every model simulated. For a given seed the
same calls give the same answers, token counts, costs, latencies and failures. Outputs are marked as
simulated and conform to what the task asked for: a valid enum value, schema-valid JSON, or text
(an enum value or JSON longer than `max_tokens` is cut off there, as a real provider's would be).

How answers are drawn, so that consensus, quality gates and routing have something real to chew on:
- each (task, prompt) has one *canonical* answer, independent of the model; a model gives it with
  probability equal to its simulated quality (its catalog skill for `metadata["capability"]`, plus
  seeded noise), otherwise a model-specific wrong one; so better models agree more often;
- a judge call (`metadata["purpose"] == "judge"`) answers `{"score": s, "critique": "..."}`, where s
  tracks `metadata["judged_quality"]` (or the quality of `metadata["judged_model"]`) with noise that
  shrinks as the judge's own skill grows;
- latency is the catalog's `base + per_token x output tokens` with log-normal noise, times the
  latency scale (0: no sleep at all, and no awaiting either, for overhead benchmarks);
- tokens: prompt characters / 4 in; out, for text a seeded share of max_tokens, uniform over
  [0.3, 0.7) (at least 8, at most max_tokens): on average the planner's EXPECTED_OUTPUT_FRACTION;
  for an enum value, JSON or a judge's score the answer's size (characters / 4), cut off at
  max_tokens as a real provider does (finish reason "length");
- cost from the catalog prices (None when the model has no price: unknown, never $0);
- failure injection: with probability `failure_rate` a call raises one of `failure_kinds`
  (transient, rate_limited with retry_after, timeout, ...). Retries of the same call draw again
  (each repeat of a request advances a per-request counter, or uses `metadata["attempt"]`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import anyio

from bmad.compiler.call_shapes import EXPECTED_OUTPUT_FRACTION
from bmad.runtime.providers import base
from bmad.runtime.providers.health import HealthReport
from bmad.runtime.providers.record_builder import positional_builder
from bmad.runtime.providers.schema_sample import sample_json

SIM_MARK = "[simulated]"
DEFAULT_MAX_TOKENS = 256
_DEFAULT_QUALITY = 0.7
_DEFAULT_LATENCY = (0.3, 0.005)
_WORDS = ("the", "model", "answer", "is", "based", "on", "the", "given", "input", "and", "context",
          "with", "care", "clear", "steps", "result", "plan", "review", "summary", "detail")
_FILLER = " ".join(_WORDS * 40)
_BYTE_WORDS = tuple(_WORDS[byte % len(_WORDS)] for byte in range(256))  # one word per byte
# A text answer's length: a seeded share of max_tokens, uniform over [0.3, 0.7): on average what
# the planner expects (EXPECTED_OUTPUT_FRACTION, 0.5), so sim runs spend what plans say.
_TEXT_SHARE_SPREAD = 0.4
_TEXT_SHARE_LOW = EXPECTED_OUTPUT_FRACTION - _TEXT_SHARE_SPREAD / 2
FAILURE_KINDS = ("transient", "rate_limited", "timeout", "bad_request", "auth", "context_too_long",
                 "content_filtered", "unavailable")


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What the sim needs to know about one model (taken from the catalog by the registry)."""

    name: str
    model_id: str | None = None
    input_per_m: float | None = None  # USD per 1M tokens; None: unknown price
    output_per_m: float | None = None
    context: int | None = None
    skills: Mapping[str, float] = field(default_factory=dict)
    latency_base_s: float | None = None
    latency_per_token_s: float | None = None

    def quality_for(self, capability: str | None) -> float:
        if capability and capability in self.skills:
            return float(self.skills[capability])
        if self.skills:
            return sum(self.skills.values()) / len(self.skills)
        return _DEFAULT_QUALITY

    def cost(self, input_tokens: int, output_tokens: int) -> float | None:
        if self.input_per_m is None or self.output_per_m is None:
            return None
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1_000_000


@dataclass(frozen=True, slots=True)
class SimSettings:
    seed: int = 0
    latency_scale: float = 1.0  # 0: no sleeping at all
    failure_rate: float = 0.0  # probability that a call fails
    failure_kinds: tuple[str, ...] = ("transient",)  # which error classes injected failures use
    retry_after_s: float = 1.0  # what injected rate limits ask for (scaled by latency_scale)
    model_failure_rates: Mapping[str, float] = field(default_factory=dict)  # per model override

    def __post_init__(self) -> None:
        unknown = [k for k in self.failure_kinds if k not in FAILURE_KINDS]
        if unknown:
            raise ValueError(f"unknown failure kind(s) {unknown}; choose from {list(FAILURE_KINDS)}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if self.latency_scale < 0:
            raise ValueError("latency_scale must be >= 0")


class SimProvider:
    """Implements `base.Provider` with seeded, simulated answers."""

    def __init__(self, name: str = "sim", profiles: Mapping[str, ModelProfile] | None = None,
                 settings: SimSettings | None = None):
        self.name = name
        self.settings = settings or SimSettings()
        self._profiles: dict[str, ModelProfile] = {}
        for key, profile in (profiles or {}).items():
            self._profiles[key] = profile
            self._profiles.setdefault(profile.name, profile)
            if profile.model_id:
                self._profiles.setdefault(profile.model_id, profile)
        self._repeats: dict[int, int] = {}
        self.calls = 0
        # Per model name found in the profiles: (profile, failure rate, latency base and per
        # token, {capability: quality}), worked out on its first call rather than on every one.
        self._by_model: dict[str, tuple[ModelProfile, float, float, float, dict]] = {}

    def __repr__(self) -> str:
        return f"SimProvider(name={self.name!r}, seed={self.settings.seed})"

    @property
    def answers_instantly(self) -> bool:
        """At latency scale 0 no call ever suspends (the runtime then skips its timeout scope;
        `request.timeout_s` is still applied to the simulated latency here)."""
        return self.settings.latency_scale == 0

    def profile(self, model: str) -> ModelProfile:
        hit = self._profiles.get(model)
        return hit if hit is not None else ModelProfile(name=model)

    async def aclose(self) -> None:
        return None

    async def check(self) -> HealthReport:
        return HealthReport(self.name, "sim", "ok", "simulated: always available",
                            models=tuple(sorted({p.name for p in self._profiles.values()})))

    async def complete(self, request: base.CompletionRequest,
                       on_progress: base.ProgressCallback | None = None) -> base.CompletionResponse:
        self.calls += 1
        s = self.settings
        model = request.model_name or request.model_id
        known = self._by_model.get(model)
        if known is None:
            known = self._model_constants(model, request.model_id)
        profile, rate, base_s, per_token_s, qualities = known
        messages = request.messages
        prompt = messages[0].content if len(messages) == 1 else request.prompt_text
        meta = request.metadata
        attempt = meta.get("attempt")
        if attempt is None:
            repeat_key = hash((request.task_id, model, prompt))
            attempt = self._repeats.get(repeat_key, 0)
            self._repeats[repeat_key] = attempt + 1
        task_key = f"{s.seed}\x00{request.task_id}\x00{prompt}"
        call_key = f"{task_key}\x00{model}\x00{attempt}".encode("utf-8", "surrogatepass")
        # Every draw of the call comes from one 64-byte digest, one 64-bit value per decision,
        # the same slot whatever the path: 0 fails?, 1 failure kind, 2-3 the Gaussian noises,
        # 4 canonical answer?, 5 the model's own answer, 6 output tokens, 7 padding start.
        # Only a judge needs more: the `_Draws` stream that follows this digest.
        u = _UNPACK_8Q(_blake2b(call_key).digest())

        input_tokens = max(1, len(prompt) // 4)
        if profile.context is not None and input_tokens > profile.context:
            raise base.ContextTooLong(
                f"simulated: the prompt ({input_tokens} tokens) exceeds {model}'s context "
                f"({profile.context})", status=400, provider=self.name)

        failure = s.failure_kinds[u[1] % len(s.failure_kinds)] \
            if rate and (u[0] >> 11) * _TWO_POW_MINUS_53 < rate else None

        # Box-Muller gives two independent Gaussians from two uniforms: quality and latency noise.
        radius = math.sqrt(-2.0 * math.log(1.0 - (u[2] >> 11) * _TWO_POW_MINUS_53))
        angle = _TWO_PI * (u[3] >> 11) * _TWO_POW_MINUS_53
        capability = meta.get("capability")
        skill = qualities.get(capability)
        if skill is None:
            skill = qualities[capability] = profile.quality_for(capability)
        quality = _clip(skill + 0.05 * radius * math.cos(angle))
        purpose = meta.get("purpose")
        if purpose == "judge":
            text = self._judge_answer(request, profile, _Draws(call_key))
        else:
            text = _answer(request, task_key, quality, u)

        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        finish_reason = "stop"
        if request.enum_values or request.json_schema is not None or purpose == "judge":
            output_tokens = max(1, len(text) // 4)
            if output_tokens > max_tokens:
                # a real provider stops at max_tokens: the answer is cut off there (finish reason
                # "length"), and a cut enum value or JSON text won't parse (the runtime repairs,
                # retries or fails it)
                text = text[:max_tokens * 4]
                output_tokens = max_tokens
                finish_reason = "length"
        else:
            output_tokens = max(8, int(max_tokens * (_TEXT_SHARE_LOW
                                                     + _TEXT_SHARE_SPREAD * (u[6] >> 11) * _TWO_POW_MINUS_53)))
            if output_tokens > max_tokens:
                output_tokens = max_tokens
            if len(text) < output_tokens * 4:  # most short answers need no padding at all
                text = _pad(text, output_tokens * 4, u[7] % 40)

        model_latency = (base_s + per_token_s * output_tokens) \
            * math.exp(0.15 * radius * math.sin(angle))
        scale = s.latency_scale

        if failure == "timeout" or (request.timeout_s is not None
                                    and model_latency > request.timeout_s):
            waited = min(model_latency, request.timeout_s or model_latency)
            if scale:
                await anyio.sleep(waited * scale)
            raise base.Timeout(f"simulated: {model} did not answer within "
                               f"{waited:.2f}s", provider=self.name)
        if failure is not None:
            if scale:
                await anyio.sleep(min(model_latency, base_s) * scale)
            raise _injected_error(failure, model, self.name, s.retry_after_s * scale)

        if scale:
            if on_progress is not None and request.stream:
                # Report progress in a few steps while "generating".
                steps = 4
                for i in range(1, steps + 1):
                    await anyio.sleep(model_latency * scale / steps)
                    on_progress(output_tokens * i // steps)
            else:
                await anyio.sleep(model_latency * scale)
        if on_progress is not None and not (scale and request.stream):
            on_progress(output_tokens)

        return _response(  # every field of `CompletionResponse`, in order
            text, input_tokens, output_tokens, model_latency * scale,
            profile.cost(input_tokens, output_tokens), 0, 0, finish_reason, request.model_id, True,
            {"simulated": True, "model": model, "quality": round(quality, 4),
             "model_latency_s": round(model_latency, 4), "seed": s.seed, "attempt": attempt},
            None)

    def _model_constants(self, model: str, model_id: str
                         ) -> tuple[ModelProfile, float, float, float, dict]:
        s = self.settings
        profile = self._profiles.get(model) or self._profiles.get(model_id) \
            or ModelProfile(name=model)
        rate = s.model_failure_rates.get(model, s.failure_rate) if s.model_failure_rates \
            else s.failure_rate
        known = (profile, rate, *_latency_profile(profile), {})
        if model in self._profiles:  # otherwise the profile may depend on the model id too
            self._by_model[model] = known
        return known

    def _judge_answer(self, request: base.CompletionRequest, judge: ModelProfile,
                      rng: _Draws) -> str:
        meta = request.metadata
        judged = meta.get("judged_quality")
        if judged is None and meta.get("judged_model"):
            judged = self.profile(str(meta["judged_model"])).quality_for(meta.get("capability"))
        if judged is None:
            judged = rng.uniform(0.4, 0.95)
        # A better judge is a less noisy one.
        noise = 0.02 + 0.1 * (1.0 - judge.quality_for("reasoning"))
        score = round(_clip(float(judged) + rng.gauss(0, noise)), 3)
        critique = (f"{SIM_MARK} The answer is {_verdict(score)}; "
                    + ("no changes needed." if score >= 0.85 else
                       "it should be more specific and address every point of the request."))
        answer: dict[str, Any] = {"score": score, "critique": critique}
        if request.json_schema is not None:
            from jsonschema import validators
            if not validators.validator_for(request.json_schema)(request.json_schema).is_valid(answer):
                shaped = sample_json(request.json_schema, rng.rng())
                if isinstance(shaped, dict):
                    shaped.update({k: v for k, v in answer.items() if k in shaped})
                answer = shaped
        return json.dumps(answer)


# ----------------------------------------------------------------------------------------------


class _Draws:
    """More seeded uniforms for a call (judges), straight from a hash: it starts at block 1, after
    the call's own 64-byte digest (block 0, unsalted), so no value is used twice."""

    __slots__ = ("_key", "_block", "_values", "_next")

    def __init__(self, call_key: bytes):
        self._key = call_key
        self._block = 1
        self._values: tuple[int, ...] = ()
        self._next = 8  # values are drawn 8 at a time from one 64-byte digest

    def _refill(self) -> None:
        block = self._block
        salt = _SALTS[block] if block < 8 else block.to_bytes(16, "little")
        digest = hashlib.blake2b(self._key, digest_size=64, salt=salt).digest()
        self._values = _UNPACK_8Q(digest)
        self._block += 1
        self._next = 0

    def _u64(self) -> int:
        if self._next >= 8:
            self._refill()
        value = self._values[self._next]
        self._next += 1
        return value

    def random(self) -> float:
        if self._next >= 8:
            self._refill()
        value = self._values[self._next]
        self._next += 1
        return (value >> 11) * _TWO_POW_MINUS_53

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def gauss(self, mu: float, sigma: float) -> float:
        u1 = 1.0 - self.random()  # (0, 1]
        return mu + sigma * math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * self.random())

    def rng(self) -> random.Random:
        """A full `random.Random` seeded from this stream, for heavier draws (JSON values)."""
        return random.Random(self._u64())


_response = positional_builder(base.CompletionResponse)
_blake2b = hashlib.blake2b
_CRC_SALT = 0x9E3779B9
_SALTS = tuple(block.to_bytes(16, "little") for block in range(8))
_UNPACK_8Q = struct.Struct("<8Q").unpack
_TWO_POW_MINUS_53 = 1.0 / 9007199254740992.0
_TWO_PI = 2.0 * math.pi


def _clip(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _verdict(score: float) -> str:
    return "excellent" if score >= 0.85 else "adequate" if score >= 0.6 else "weak"


def _latency_profile(profile: ModelProfile) -> tuple[float, float]:
    base_s = profile.latency_base_s if profile.latency_base_s is not None else _DEFAULT_LATENCY[0]
    per = profile.latency_per_token_s if profile.latency_per_token_s is not None \
        else _DEFAULT_LATENCY[1]
    return base_s, per


def _answer(request: base.CompletionRequest, task_key: str, quality: float,
            u: tuple[int, ...]) -> str:
    """The canonical answer with probability `quality`, else a model-specific one (from the
    call's own draws). The canonical one depends on the task and prompt only."""
    correct = (u[4] >> 11) * _TWO_POW_MINUS_53 < quality
    if request.enum_values:
        values = request.enum_values
        canonical = values[_canonical_bits(task_key) % len(values)]
        if correct or len(values) == 1:
            return canonical
        others = [v for v in values if v != canonical]
        return others[u[5] % len(others)]
    bits = _canonical_bits(task_key) if correct else u[5]
    if request.json_schema is not None:
        return json.dumps(sample_json(request.json_schema, random.Random(bits)), sort_keys=True)
    w = _BYTE_WORDS
    b0, b1, b2, b3, b4, b5, b6, b7 = bits.to_bytes(8, "little")
    words = f"{w[b0]} {w[b1]} {w[b2]} {w[b3]} {w[b4]} {w[b5]} {w[b6]} {w[b7]}"
    return f"{SIM_MARK} Answer for {request.task_id or 'the request'}: {words}."


def _canonical_bits(task_key: str) -> int:
    """64 model-independent bits for a (seed, task, prompt): two CRC-32s, much cheaper than a
    second cryptographic digest; they only pick among valid answers, so need no more."""
    data = task_key.encode("utf-8", "surrogatepass")
    return zlib.crc32(data) << 32 | zlib.crc32(data, _CRC_SALT)


def _pad(text: str, chars: int, start_word: int) -> str:
    need = chars - len(text) - 1
    start = start_word * 4
    filler = _FILLER if need + start <= len(_FILLER) else _FILLER * (need // len(_FILLER) + 2)
    return text + " " + filler[start:start + need]


def _injected_error(kind: str, model: str, provider: str, retry_after_s: float) -> base.ProviderError:
    message = f"simulated {kind.replace('_', ' ')} failure from {model}"
    cls = base.ERROR_CLASSES[kind]
    if kind == "rate_limited":
        return cls(message, status=429, provider=provider, retry_after_s=retry_after_s)
    status = {"transient": 503, "bad_request": 400, "auth": 401, "context_too_long": 400,
              "content_filtered": 400}.get(kind)
    return cls(message, status=status, provider=provider)
