"""Seal the plan: build the `Plan` and its hash, and verify a sealed plan before running it.

The hash is sha256 over canonical JSON of everything that affects execution or that a reviewer
reads as the task's decision: the expanded program without spans (`ir_codec.to_data(...,
spans=False)`), the catalog entries (model and provider declarations) the tasks use, every task
plan with its candidates (`strategy adaptive` reroutes to them at run time) and route reason,
budget, objective, strategy, scheduling, provider mode and concurrency, and the sha256 of each
source file. Notes, the list of passes and `history_used` describe how the plan was made and are
not hashed. A task's displayed `model` repeats `routed_model` / `participants`: `verify_plan`
checks that it agrees with them instead (E220).

Paths the compiler resolved (source files, imports, replay data, GGUF files) are hashed relative
to the main file's folder when they lie inside it: a project moved or cloned elsewhere plans to
the same hash, so `--resume RUN FILE` and sealed plans keep working there. Hashes made before
this (over absolute paths) still verify and still match their runs (`legacy_plan_hash`), and so
do hashes made before candidates and route reasons were covered (`previous_plan_hash`).

Prices are part of what a plan decided: a plan priced with the user-level override (`bmad models
--prices`) names it in `prices` (hashed when set, so plans without one hash as before), and
`verify_plan` refuses a plan (E221) when the override in force now isn't the one it was priced with:
added since, changed, removed or another file. A plan that records none (sealed without an
override, or by a bmad before the field: then the source at the override's path counts as it) is
refused only when an override that reprices one of its models is in force now.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, is_dataclass
from functools import cache
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Mapping

from bmad.compiler import ir, ir_codec
from bmad.compiler.diagnostics import Diagnostic, error
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, WorkflowDraft
from bmad.compiler.plan import Candidate, Estimate, Plan, TaskPlan, WorkflowPlan
from bmad.compiler.prices import load_overrides, override_path, priced_with, repriced_models

NODE_TYPES = frozenset(ir_codec.NODE_CLASSES.values())
# A task's explanations: hashed since `previous_plan_hash` (`strategy adaptive` reroutes to
# candidates at run time, and reviewers read both); hashes made before left them out.
EXPLANATION_TASK_FIELDS = ("candidates", "route_reason")
TASK_FIELDS = tuple(f.name for f in fields(TaskPlan) if f.name not in EXPLANATION_TASK_FIELDS + ("estimate",))
ESTIMATE_FIELDS = tuple(f.name for f in fields(Estimate))
CANDIDATE_FIELDS = tuple(f.name for f in fields(Candidate))
_task_values = attrgetter(*TASK_FIELDS)
_estimate_values = attrgetter(*ESTIMATE_FIELDS)
_candidate_values = attrgetter(*CANDIDATE_FIELDS)


@cache
def _unspanned_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name != "span" and not f.name.endswith("_span"))


@cache
def _node_encoder(cls: type):
    """One IR class's shallow span-free dict; json's C encoder walks the values (tuples as lists)."""
    names, node = _unspanned_fields(cls), cls.__name__
    if not names:
        return lambda value: {"node": node}
    values = attrgetter(*names) if len(names) > 1 else (lambda value: (getattr(value, names[0]),))

    def encode(value: Any) -> dict[str, Any]:
        out = dict(zip(names, values(value)))
        out["node"] = node
        return out

    return encode


def _encode_node(value: Any) -> Any:
    """`json.dumps(default=...)`: IR nodes as `ir_codec.to_data(value, spans=False)` would give them."""
    cls = type(value)
    if cls in NODE_TYPES:
        return _node_encoder(cls)(value)
    if is_dataclass(value) and not isinstance(value, type):
        return ir_codec.to_data(value, spans=False)
    raise TypeError(f"{cls.__name__} is not JSON serialisable")


def canonical_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces) of plain data that may hold IR nodes, spans left out:
    the same text as dumping `ir_codec.to_data(value, spans=False)`, without building that copy
    (the copy's walk dominated sealing a 10k-task plan)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_encode_node)


def _task_payload(task: TaskPlan, explanations: bool = True) -> dict[str, Any]:
    """A task plan's hashed fields, read straight from the dataclass (no JSON round trip)."""
    out = dict(zip(TASK_FIELDS, _task_values(task)))
    if out["method"] is None:  # hashed only when set: plans sealed before the field still verify
        del out["method"]
    out["estimate"] = _estimate_values(task.estimate)
    if explanations:
        out["candidates"] = [_candidate_values(c) for c in task.candidates]
        out["route_reason"] = task.route_reason
    return out


def _workflow_payload(wp: WorkflowPlan, explanations: bool = True) -> dict[str, Any]:
    return {"workflow": wp.workflow, "tasks": [_task_payload(t, explanations) for t in wp.tasks],
            "totals": _estimate_values(wp.totals),
            "critical_path": wp.critical_path, "stages": wp.stages}


def _used_models(plan: Plan) -> list[str]:
    names: set[str] = set()
    for wp in (plan.entry, *plan.subplans):
        for t in wp.tasks:
            names.update(m for m in (t.model, t.judge, *t.participants, *t.fallbacks, *t.cascade) if m)
    return sorted(names)


def _relative_paths(program: ir.Program) -> Callable[[str | None], str | None]:
    """Maps a path inside the main file's folder (absolute, or relative to the working directory,
    as the compiler names the files it read) to its path relative to that folder; other paths (an
    installed model file, `<std>/...`) stay as they are."""
    main = next((f.path for f in program.files if f.role == "main"), None)
    if main is None or main.startswith("<"):
        return lambda path: path
    root = Path(main).absolute().parent  # a main file named relative to the working directory

    def rel(path: str | None) -> str | None:
        if not path or path.startswith("<"):  # `<std>/NAME.bmad`, `<stdin>`: no place on disk
            return path
        try:
            return Path(path).absolute().relative_to(root).as_posix()
        except ValueError:
            return path

    return rel


def _portable(program: ir.Program, rel: Callable[[str | None], str | None]) -> ir.Program:
    return ir.replace(
        program,
        files=tuple(ir.replace(f, path=rel(f.path)) for f in program.files),
        imports=tuple(ir.replace(i, resolved=rel(i.resolved)) for i in program.imports),
        uses=tuple(ir.replace(u, resolved=rel(u.resolved)) for u in program.uses),
        providers=tuple(ir.replace(p, data=rel(p.data)) if p.data else p for p in program.providers),
        models=tuple(ir.replace(m, path=rel(m.path)) if m.path else m for m in program.models))


def hash_payload(plan: Plan, *, portable: bool = True, explanations: bool = True) -> dict[str, Any]:
    """What the hash covers, as data for `canonical_json` (tuples and IR nodes left as they are).
    `portable=False`: absolute paths, as hashes were made before (`legacy_plan_hash`);
    `explanations=False`: without candidates and route reasons (`previous_plan_hash`)."""
    program, sources, prices = plan.program, plan.sources, plan.prices
    if portable:
        rel = _relative_paths(program)
        program = _portable(program, rel)
        sources = {rel(path): digest for path, digest in sources.items()}
        prices = rel(prices)
    payload: dict[str, Any] = {
        "plan_version": plan.plan_version, "ir_version": plan.ir_version, "workflow": plan.workflow,
        "budget": [plan.budget.usd, plan.budget.tokens, plan.budget.time_s],
        "objective": plan.objective, "strategy": plan.strategy, "scheduling": plan.scheduling,
        "provider_mode": plan.provider_mode, "entry": _workflow_payload(plan.entry, explanations),
        "subplans": [_workflow_payload(s, explanations) for s in plan.subplans],
        "provider_concurrency": dict(sorted(plan.provider_concurrency.items())),
        "sources": dict(sorted(sources.items())),
        "program": program,  # IR nodes: encoded span-free by `canonical_json`
    }
    if prices is not None:  # hashed only when set: plans sealed before the field still verify
        payload["prices"] = prices
    catalog = {}
    for name in _used_models(plan):
        model = program.model(name)
        if model is not None:
            provider = program.provider(model.provider.name)
            catalog[name] = {"model": model, "provider": provider}
    payload["catalog"] = catalog
    return payload


def compute_plan_hash(plan: Plan) -> str:
    return hashlib.sha256(canonical_json(hash_payload(plan)).encode("utf-8")).hexdigest()


def previous_plan_hash(plan: Plan) -> str:
    """The portable hash as bmad made it before it covered candidates and route reasons: what
    plans sealed and runs journaled then carry."""
    return hashlib.sha256(canonical_json(hash_payload(plan, explanations=False)).encode("utf-8")).hexdigest()


def legacy_plan_hash(plan: Plan) -> str:
    """The hash as bmad made it before hashes were portable (absolute paths, no explanations):
    what plans sealed and runs journaled then carry."""
    return hashlib.sha256(canonical_json(hash_payload(plan, portable=False, explanations=False))
                          .encode("utf-8")).hexdigest()


def _earlier_hash(plan: Plan, recorded: str) -> bool:
    """Whether `recorded` is this plan's hash as an earlier bmad made it (before hashes covered
    explanations, or were portable); computed only when the current hash didn't match."""
    return recorded == previous_plan_hash(plan) or recorded == legacy_plan_hash(plan)


def plan_hash_matches(plan: Plan, recorded: str) -> bool:
    """Whether `recorded` (a sealed plan's or a journaled run's hash) is this plan's hash, as made
    now or by an earlier bmad."""
    return recorded == plan.plan_hash or _earlier_hash(plan, recorded)


def _workflow_plan(wd: WorkflowDraft) -> WorkflowPlan:
    return WorkflowPlan(workflow=wd.name, tasks=tuple(td.plan for td in wd.tasks.values()),
                        totals=wd.totals, critical_path=wd.critical_path, stages=wd.stages)


def seal_plan(draft: Draft, context: PassContext) -> Draft:
    entry = draft.workflows.get(draft.entry)
    if entry is None or draft.failed:
        return draft
    plan = Plan(
        workflow=entry.name,
        program=draft.program,
        entry=_workflow_plan(entry),
        subplans=tuple(_workflow_plan(wd) for name, wd in draft.workflows.items() if name != draft.entry),
        budget=entry.budget,
        objective=entry.objective,
        strategy=draft.strategy,
        scheduling=context.scheduling,
        provider_mode=context.provider_mode,
        sources={f.path: f.sha256 for f in draft.program.files},
        prices=priced_with(draft.program),
        notes=tuple(draft.notes),
        provider_concurrency=dict(sorted(draft.provider_concurrency.items())),
        history_used=context.history is not None,
        passes=tuple(draft.passes) + ("seal_plan",),
    )
    draft.plan = ir.replace(plan, plan_hash=compute_plan_hash(plan))
    return draft


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plan_dir(plan_file: str | Path | None) -> Path | None:
    return None if plan_file is None else Path(plan_file).parent


def _places(path: str, plan_dir: Path | None) -> list[Path]:
    """Where a source path recorded in a plan may be now: as written (relative to the working
    directory, like the compiler named it), then, if relative, next to the plan file."""
    from bmad.compiler.load import stdlib_file  # `<std>/NAME.bmad` -> the installed file

    if path.startswith("<"):
        installed = stdlib_file(path)
        return [Path(installed)] if installed else []
    places = [Path(path)]
    if plan_dir is not None and not places[0].is_absolute():
        places.append(plan_dir / path)
    return places


def locate_source(path: str, plan_file: str | Path | None = None) -> Path | None:
    """The file a plan's recorded source path names now: from the working directory, else (for a
    relative path) from the plan file's directory (a plan run from elsewhere); None if neither."""
    try:
        for place in _places(path, _plan_dir(plan_file)):
            if place.is_file():
                return place
    except (OSError, ValueError):  # a path the OS can't take (a NUL byte, too long)
        pass
    return None


def _read(place: Path) -> str | None:
    """A source's text now; None if it isn't there. Text that isn't UTF-8 reads as "" (changed)."""
    try:
        return place.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""
    except (OSError, ValueError):
        return None


def _same_file(recorded: str, now: Path) -> bool:
    return recorded == str(now) or Path(recorded).absolute() == now.absolute()


def _recorded_prices(plan: Plan, now: Path) -> str | None:
    """The price override the plan was priced with: its `prices` field, or, in a plan sealed before
    that field, the source that is the override in force now (None: the plan records none)."""
    if plan.prices is not None:
        return plan.prices
    return next((path for path in plan.sources if _same_file(path, now)), None)


def _source_texts(path: str, current_sources: dict[str, str] | None, plan_dir: Path | None) -> list[str]:
    """The texts a recorded source may have now (none: it is gone)."""
    if current_sources is not None and path in current_sources:
        return [current_sources[path]]
    try:
        places = _places(path, plan_dir)
    except (OSError, ValueError):
        places = []
    return [text for text in map(_read, places) if text is not None]


PRICES_HINT = "plan again with the prices in force now (`bmad plan FILE -o plan.json`), or run with --replan"


def _names(models: tuple[str, ...], shown: int = 3) -> str:
    more = len(models) - shown
    return ", ".join(models[:shown]) + (f" and {more} more" if more > 0 else "")


def _price_problems(plan: Plan, recorded: str | None, current_sources: dict[str, str] | None,
                    plan_dir: Path | None, environ: Mapping[str, str] | None) -> list[Diagnostic]:
    """BMAD-E221 when the user-level price override in force (`bmad models --prices`) isn't the one
    the plan was priced with: one added since (that reprices a model of the plan), changed,
    removed, or another file (BMAD_HOME changed). A plan that records no override is refused only
    when an override that reprices its models is in force now."""
    now = override_path(environ)
    overrides, _ = load_overrides(environ)  # None: no file, or a broken one compiling ignores
    repriced = repriced_models(plan.program, overrides) if overrides is not None else ()
    loaded = f"loaded from {overrides.source} at {overrides.loaded_at}" if overrides is not None else ""

    def stale(path: str, what: str) -> list[Diagnostic]:
        return [error("BMAD-E221", ir.Span.unknown(path), f"prices changed since this plan was made: {what}",
                      PRICES_HINT)]

    if recorded is None:
        if not repriced:
            return []
        return stale(str(now), f"the price override {now} ({loaded}) now reprices {_names(repriced)}, "
                               "and the plan was priced without it")
    if not _same_file(recorded, now):
        in_force = (f"the prices in force are {now}'s ({loaded})" if repriced
                    else f"{now}, the price override in force, sets none of its prices" if overrides
                    else "the catalog's prices are in force")
        return stale(recorded, f"the plan was priced with the price override {recorded}, and {in_force}")
    texts = _source_texts(recorded, current_sources, plan_dir)
    if not texts:
        return stale(recorded, f"the price override {recorded} the plan was priced with was removed, "
                               "and the catalog's prices are in force")
    if all(_sha256(text) != plan.sources.get(recorded) for text in texts):
        return stale(recorded, f"the price override {recorded} the plan was priced with was replaced"
                               + (f" (now {loaded})" if overrides is not None else ""))
    return []


def verify_plan(plan: Plan, current_sources: dict[str, str] | None = None, *,
                plan_file: str | Path | None = None,
                environ: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """Problems that make a sealed plan unsafe to run: a hash that doesn't verify, a displayed
    value that disagrees with what runs (both BMAD-E220), a changed (E221) or missing (E222) source,
    other prices in force than the plan was priced with (E221: `_price_problems`).

    `current_sources` maps each source path to its text now; None reads the files from disk.
    `plan_file`, the plan's own file: E220 is reported there, and a relative source path that
    isn't found from the working directory is looked for next to it (a plan run from elsewhere).
    `environ` says where the user-level price override is (default os.environ).
    """
    problems: list[Diagnostic] = []
    at = ir.Span.unknown(str(plan_file) if plan_file is not None else "<plan>")
    edited = [] if compute_plan_hash(plan) == plan.plan_hash or _earlier_hash(plan, plan.plan_hash) \
        else ["the plan's hash doesn't verify"]
    for what in [*edited, *plan.inconsistencies]:
        problems.append(error("BMAD-E220", at, f"{what}: the plan file was edited after it was sealed",
                              "plan again with `bmad plan FILE -o plan.json`, or run with --replan"))
    plan_dir = _plan_dir(plan_file)
    prices = _recorded_prices(plan, override_path(environ))
    for path, recorded in sorted(plan.sources.items()):
        if path == prices:
            continue  # `_price_problems` says what changed about it
        texts = _source_texts(path, current_sources, plan_dir)
        if not texts:
            problems.append(error("BMAD-E222", ir.Span.unknown(path),
                                  f"{path}, planned from, no longer exists",
                                  "plan again, or run with --replan"))
        elif all(_sha256(text) != recorded for text in texts):
            problems.append(error("BMAD-E221", ir.Span.unknown(path),
                                  f"{path} changed since this plan was made",
                                  "review a new plan (`bmad plan`), or run with --replan"))
    problems.extend(_price_problems(plan, prices, current_sources, plan_dir, environ))
    return problems
