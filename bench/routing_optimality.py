"""Routing optimality: the planner's choices against brute force on random small instances.

Random programs (<= 12 tasks, 3-4 models, random skills, prices, floors, max_tokens) are planned
with --provider sim. Brute force enumerates every assignment of a qualified model to each task:
1. objective cost: the plan's expected cost vs the cheapest assignment (goal: within 5%);
2. objective quality under a dollar budget: the plan's mean expected quality vs the best assignment
   whose worst case fits the budget (enforce_budget is a greedy heuristic; this shows its gap).
Usage: python bench/routing_optimality.py [instances] [seed]
"""

from __future__ import annotations

import itertools
import random
import sys

from bmad.compiler import ir
from bmad.compiler.passes import make_context, plan_program

CAPS = ("code", "reasoning", "writing")


def random_program(rng: random.Random, objective: str, budget: float | None) -> ir.Program:
    models = []
    for i in range(rng.randint(3, 4)):
        caps = rng.sample(CAPS, rng.randint(1, 3))
        models.append(ir.Model(
            name=f"m{i}", provider=ir.Name(f"p{i % 3}"),
            price=ir.Price(round(rng.uniform(0.05, 15), 2), round(rng.uniform(0.2, 60), 2)),
            skills=tuple(ir.Skill(c, round(rng.uniform(0.4, 0.98), 2)) for c in caps)))
    tasks = []
    for i in range(rng.randint(2, 12)):
        needs = rng.sample(CAPS, rng.randint(0, 1))
        text = "x" * rng.randint(20, 2000)
        tasks.append(ir.Task(name=f"t{i}", prompt=ir.Template(text, (ir.TextPart(text),)),
                             needs=tuple(ir.Name(n) for n in needs), max_tokens=rng.choice([100, 400, 1500]),
                             quality=ir.Quality(round(rng.uniform(0.4, 0.7), 2)) if rng.random() < 0.4 else None))
    workflow = ir.Workflow(name="w", tasks=tuple(tasks), optimize=objective,
                           budget=ir.Budget(usd=budget) if budget else None)
    providers = tuple(ir.Provider(name=f"p{i}", kind="sim") for i in range(3))
    return ir.Program(providers=providers, models=tuple(models), workflows=(workflow,), entry="w")


def qualified_options(program, objective):
    from bmad.compiler.passes import run_passes
    from bmad.compiler.passes.estimate_cost import SoloAssignment, estimate_task

    context = make_context(program, environment={}, provider_mode="sim")
    draft = run_passes(program, context, until="route_models")
    wd = draft.workflows["w"]
    per_task = []
    for td in wd.tasks.values():
        row = []
        for c in td.evaluated.values():
            if c.qualified and c.available:
                est = estimate_task(td, SoloAssignment(c.model, None), context.catalog, None, solo=True)
                row.append((c.model, est.cost_usd_expected, est.cost_usd_worst, c.expected_quality))
        per_task.append(row)
    return per_task


def main(argv: list[str]) -> None:
    instances = int(argv[0]) if argv else 200
    rng = random.Random(int(argv[1]) if len(argv) > 1 else 1)
    cost_ratios, quality_gaps, checked, over_budget = [], [], 0, 0
    for _ in range(instances):
        program = random_program(rng, "cost", None)
        opts = qualified_options(program, "cost")
        if any(not row for row in opts):
            continue
        plan, _ = plan_program(program, make_context(program, environment={}, provider_mode="sim"))
        best = min(sum(o[1] for o in combo) for combo in itertools.product(*opts))
        cost_ratios.append(plan.totals.cost_usd_expected / best if best else 1.0)
        # quality under a budget between the cheapest and the dearest worst case
        worst_lo = sum(min(o[2] for o in row) for row in opts)
        worst_hi = sum(max(o[2] for o in row) for row in opts)
        budget = worst_lo + 0.3 * (worst_hi - worst_lo)
        q_program = ir.replace(program, workflows=(ir.replace(program.workflows[0], optimize="quality",
                                                              budget=ir.Budget(usd=budget)),))
        q_plan, diags = plan_program(q_program, make_context(q_program, environment={}, provider_mode="sim"))
        combos = itertools.product(*opts)
        best_q = max((sum(o[3] for o in combo) / len(combo) for combo in combos
                      if sum(o[2] for o in combo) <= budget), default=None)
        if q_plan is None or best_q is None:
            continue
        checked += 1
        if q_plan.totals.cost_usd_worst > budget + 1e-9:
            over_budget += 1
            continue
        got = sum(t.expected_quality for t in q_plan.tasks) / len(q_plan.tasks)
        quality_gaps.append(best_q - got)
    cost_ratios.sort()
    within = sum(1 for r in cost_ratios if r <= 1.05)
    print(f"cost objective: {len(cost_ratios)} instances, plan/optimum expected cost: "
          f"mean {sum(cost_ratios) / len(cost_ratios):.4f}, max {cost_ratios[-1]:.4f}, "
          f"within 5%: {within}/{len(cost_ratios)}")
    if quality_gaps:
        quality_gaps.sort()
        print(f"quality under budget: {checked} instances, {over_budget} left over budget (W210), "
              f"mean quality gap to optimum {sum(quality_gaps) / len(quality_gaps):.4f}, "
              f"max {quality_gaps[-1]:.4f}, optimal in {sum(1 for g in quality_gaps if g <= 1e-9)}/{len(quality_gaps)}")


if __name__ == "__main__":
    main(sys.argv[1:])
