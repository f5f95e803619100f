"""Property tests on random programs built from IR nodes: routing, budget, stages, the plan hash."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmad.compiler import ir
from bmad.compiler.passes import compute_plan_hash, make_context, plan_program

CAPABILITIES = ("code", "reasoning", "writing")
PROVIDERS = ("p1", "p2", "p3")


@st.composite
def programs(draw, spans: bool = False):
    n_models = draw(st.integers(2, 5))
    models = []
    for i in range(n_models):
        caps = draw(st.lists(st.sampled_from(CAPABILITIES), min_size=1, max_size=3, unique=True))
        models.append(ir.Model(
            name=f"m{i}", provider=ir.Name(draw(st.sampled_from(PROVIDERS))),
            price=ir.Price(draw(st.floats(0.05, 20)), draw(st.floats(0.1, 60))),
            skills=tuple(ir.Skill(c, round(draw(st.floats(0.3, 0.99)), 2)) for c in caps),
            latency=ir.Latency(draw(st.floats(0.1, 2)), draw(st.floats(0.001, 0.03)))))
    n_tasks = draw(st.integers(1, 8))
    tasks = []
    for i in range(n_tasks):
        needs = draw(st.lists(st.sampled_from(CAPABILITIES), max_size=2, unique=True))
        depends = draw(st.lists(st.sampled_from([f"t{j}" for j in range(i)]), max_size=2, unique=True)) if i else []
        floor = draw(st.one_of(st.none(), st.floats(0.3, 0.9)))
        consensus = draw(st.one_of(st.none(), st.just(ir.Consensus(method="vote", count=2))))
        text = f"Do step {i}"
        tasks.append(ir.Task(
            name=f"t{i}", prompt=ir.Template(text, (ir.TextPart(text),)),
            needs=tuple(ir.Name(n) for n in needs), depends=tuple(ir.Name(d) for d in depends),
            quality=ir.Quality(floor) if floor is not None else None, consensus=consensus,
            max_tokens=draw(st.integers(50, 2000)),
            priority=draw(st.sampled_from([None, "low", "high", "critical"]))))
    budget = draw(st.one_of(st.none(), st.floats(0.0001, 0.5)))
    workflow = ir.Workflow(name="w", tasks=tuple(tasks), budget=ir.Budget(usd=budget) if budget else None,
                           optimize=draw(st.sampled_from(["cost", "latency", "quality", "balanced"])))
    providers = tuple(ir.Provider(name=p, kind="sim") for p in PROVIDERS)
    return ir.Program(providers=providers, models=tuple(models), workflows=(workflow,), entry="w")


def plan(program):
    return plan_program(program, make_context(program, environment={}, provider_mode="sim"))


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(programs())
def test_no_task_goes_to_a_model_lacking_a_capability_or_below_its_floor(program):
    result, _diagnostics = plan(program)
    if result is None:
        return
    workflow = program.workflow("w")
    for tp in result.tasks:
        if tp.route_rule in ("fallback:local", "best-effort") or tp.downgraded_from == "local":
            continue
        task = workflow.task(tp.id)
        for name in tp.participants or (tp.model,):
            model = result.program.model(name)  # the plan's program: with the embedded `local`
            for need in task.needs:
                assert model.skill(need.name) is not None, (tp.id, name, need.name)
                if tp.quality_floor is not None:
                    assert model.skill(need.name) >= tp.quality_floor - 1e-9


@SETTINGS
@given(programs())
def test_when_the_budget_is_enforced_the_worst_case_fits(program):
    result, diagnostics = plan(program)
    codes = {d.code for d in diagnostics}
    budget = program.workflow("w").budget
    if result is None or budget is None or codes & {"BMAD-W210", "BMAD-W215"}:
        return
    assert result.totals.cost_usd_worst <= budget.usd + 1e-9


@SETTINGS
@given(programs())
def test_stages_respect_dependencies(program):
    result, _ = plan(program)
    if result is None:
        return
    stage = {t.id: t.stage for t in result.tasks}
    for t in result.tasks:
        for d in t.depends:
            assert stage[d] < stage[t.id]
    assert sorted(n for s in result.entry.stages for n in s) == sorted(stage)


def _shift_spans(program: ir.Program) -> ir.Program:
    moved = ir.Span("elsewhere.bmad", 7, 3, 7, 9, 100, 106)
    workflow = program.workflows[0]
    tasks = tuple(replace(t, span=moved, name_span=moved) for t in workflow.tasks)
    return replace(program, workflows=(replace(workflow, tasks=tasks, span=moved),))


@SETTINGS
@given(programs(), st.data())
def test_the_hash_changes_with_execution_and_only_then(program, data):
    first, _ = plan(program)
    if first is None:
        return
    same, _ = plan(_shift_spans(program))
    assert same.plan_hash == first.plan_hash  # positions don't affect execution
    workflow = program.workflows[0]
    index = data.draw(st.integers(0, len(workflow.tasks) - 1))
    task = workflow.tasks[index]
    changed_task = replace(task, max_tokens=task.max_tokens + 1)
    changed = replace(program, workflows=(replace(workflow, tasks=workflow.tasks[:index] + (changed_task,)
                                                  + workflow.tasks[index + 1:]),))
    other, _ = plan(changed)
    if other is not None:
        assert other.plan_hash != first.plan_hash
    assert compute_plan_hash(first) == first.plan_hash
