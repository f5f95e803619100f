"""Models: every model a task names is declared, every model's provider is declared, and every
capability a task `needs` is one some model has (and the models a task pins or lists have it)."""

from __future__ import annotations

from typing import Iterator

from bmad.compiler import ir
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.checks.suggest import and_then, closest, did_you_mean, list_names
from bmad.compiler.diagnostics import Diagnostic, Related, error, warning


def model_mentions(task: ir.Task) -> Iterator[tuple[ir.Name, str, bool]]:
    """(name, where it is written, whether the model must do the task's work itself)."""
    if task.model is not None:
        yield task.model, "`model`", True
    if task.route is not None:
        for name in task.route.models:
            yield name, f"`route {task.route.strategy}`", True
    for name in task.fallback:
        yield name, "`fallback`", True
    if task.consensus is not None:
        c = task.consensus
        label = {"best_of": "`best_of`", "peer_review": "`peer_review`"}.get(c.method, f"`consensus {c.method}`")
        for name in c.participants:
            yield name, label, True
        if c.judge is not None:
            judge_label = {"ensemble": "`consensus ensemble by`", "best_of": "`best_of ... judged by`"}.get(
                c.method, f"`consensus {c.method}`")
            yield c.judge, judge_label, False
    if task.quality is not None and task.quality.judge is not None:
        yield task.quality.judge, "`quality ... judged by`", False


def check_models(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    providers = list(index.providers)
    for model in index.program.models:
        if model.provider.name not in index.providers:
            hint = did_you_mean(model.provider.name, providers, "providers")
            out.append(error(
                "BMAD-E104", model.provider.span if model.provider.span != ir.NO_SPAN else model.name_span,
                f"model `{model.name}` uses provider `{model.provider.name}`, which is not declared",
                and_then(hint, f"or declare it: `provider {model.provider.name} {{ kind ... }}`"),
            ))
    models = index.model_names()
    known_capabilities = list(index.capabilities)
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            needs = [n for n in task.needs if n.name in index.capabilities]
            for name, where, does_work in model_mentions(task):
                model = index.models.get(name.name)
                if model is None:
                    out.append(error(
                        "BMAD-E103", name.span,
                        f"model `{name.name}` in {where} of task `{task.name}` is not declared",
                        did_you_mean(name.name, models, "models"),
                    ))
                    continue
                if not does_work or index.in_stdlib(task.span):
                    continue
                missing = [n.name for n in needs if model.skill(n.name) is None]
                if missing:
                    able = sorted({m.name for n in needs for m in index.capabilities[n.name]
                                   if all(m.skill(k.name) is not None for k in needs)})
                    out.append(warning(
                        "BMAD-W105", name.span,
                        f"model `{model.name}` has no skill `{'`, `'.join(missing)}`, which task `{task.name}` needs",
                        (f"models with every capability this task needs: {list_names(able)}" if able
                         else f"add `{missing[0]} SCORE` to the skills of model `{model.name}`"),
                        [Related(model.name_span, f"model `{model.name}` is declared here")],
                    ))
            for need in task.needs:
                # Without any model there is nothing to compare with (the loader adds the catalog).
                if need.name in index.capabilities or not index.models:
                    continue
                best = closest(need.name, known_capabilities)
                if known_capabilities:
                    listed = f"known capabilities: {list_names(known_capabilities)}"
                    hint = and_then(f"did you mean `{best}`?", listed) if best else listed
                else:
                    hint = "no declared model lists any skills; add `skills { " + need.name + " 0.8 }` to a model"
                out.append(error(
                    "BMAD-E160", need.span,
                    f"no model has capability `{need.name}`",
                    hint,
                ))
    return out
