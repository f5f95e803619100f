"""The typed context every optimizer pass receives: catalog, objective, overrides, history."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from bmad.compiler import ir
from bmad.compiler.catalog import LOCAL_MODEL, ModelCatalog, build_catalog, embedded_local_model
from bmad.compiler.history import ModelHistory

SCHEDULING_OBJECTIVES = ("priority_first", "cost_optimized", "latency_optimized", "balanced")
OBJECTIVES = ("cost", "latency", "quality", "balanced")

# `for each` over a list whose length the planner cannot know (an input without a default, another
# task's output): plan for this many items. `bmad plan` shows the size it assumed per task.
DEFAULT_FAN_OUT = 10


@dataclass(frozen=True, slots=True)
class PassContext:
    catalog: ModelCatalog
    objective: str | None = None  # overrides the workflow's `optimize`
    budget: ir.Budget | None = None  # overrides the workflow's budget, field by field
    min_quality: float | None = None  # raises every quality floor to at least this
    scheduling: str = "priority_first"
    # the run's strategy when it overrides the entry workflow's (`bmad run --strategy X`): how the
    # runtime runs every workflow of the run, so what the plan's stages, latency and panels follow
    strategy: str | None = None
    history: ModelHistory | None = None
    provider_mode: str | None = None  # "sim": every model available, simulated
    key_variables_set: Mapping[str, bool] = field(default_factory=dict)  # never the values
    # known values of the entry workflow's inputs (`bmad run`'s): they size its `for each` lists
    # and the prompts that interpolate them, instead of the assumed sizes
    inputs: Mapping[str, Any] = field(default_factory=dict)
    default_fan_out: int = DEFAULT_FAN_OUT
    # The embedded local model, added to the plan's program when work falls back to it.
    local_provider: ir.Provider | None = None
    local_model: ir.Model | None = None


def make_context(program: ir.Program, *, environment: Mapping[str, str] | None = None,
                 provider_mode: str | None = None, objective: str | None = None,
                 budget: ir.Budget | None = None, min_quality: float | None = None,
                 scheduling: str = "priority_first", history: ModelHistory | None = None,
                 strategy: str | None = None, inputs: Mapping[str, Any] | None = None,
                 default_fan_out: int = DEFAULT_FAN_OUT) -> PassContext:
    """A context for planning `program` here: availability from `environment` (default os.environ)."""
    env = os.environ if environment is None else environment
    local_provider, local_model = None, None
    if program.model(LOCAL_MODEL) is None:
        local_provider, local_model = embedded_local_model()
    catalog_program = program
    if local_model is not None:
        catalog_program = ir.replace(
            program,
            models=program.models + (local_model,),
            providers=program.providers + (() if program.provider(local_provider.name) else (local_provider,)),
        )
    catalog = build_catalog(catalog_program, environment=env, provider_mode=provider_mode)
    key_vars = {p.api_key_env: bool(env.get(p.api_key_env)) for p in catalog_program.providers
                if p.api_key_env}
    return PassContext(
        catalog=catalog, objective=objective, budget=budget, min_quality=min_quality,
        scheduling=scheduling, strategy=strategy, history=history if history and not history.empty else None,
        provider_mode=provider_mode, key_variables_set=key_vars, inputs=dict(inputs or {}),
        default_fan_out=default_fan_out, local_provider=local_provider, local_model=local_model,
    )
