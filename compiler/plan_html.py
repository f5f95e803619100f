"""`bmad plan --format html`: the plan as one self-contained page for review in a browser.

The task graph is drawn here as SVG (`plan-graph`): one column per parallel stage, an arrow per
dependency, the critical path in red, each node showing its model and expected cost. Below it,
the cost table (`cost-table`: model, why, expected and worst dollars, latency, quality floor and
expectation, fallbacks), the totals against the budget (`totals`), the called subworkflows
(`subworkflows`) and the planner's warnings and risks (`notes`).
"""

from __future__ import annotations

from bmad.compiler.html_page import cards, esc, num, page, section, table
from bmad.compiler.plan import Plan, TaskPlan, WorkflowPlan
from bmad.compiler.plan_render import (assumed_fan_outs, budget_verdict, fan_out_suffix, model_text, money,
                                       quality_text, rubric_names)

NODE_W, NODE_H = 190, 58
COL_GAP, ROW_GAP = 70, 18
MAX_DRAWN = 400  # beyond this the graph is too dense to read; the tables still list every task


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def render_graph(wp: WorkflowPlan, graph_id: str = "plan-graph",
                 assumed: frozenset[str] | set[str] = frozenset()) -> str:
    if not wp.tasks:
        return '<p class="empty">no tasks</p>'
    if len(wp.tasks) > MAX_DRAWN:
        return f'<p class="empty">{len(wp.tasks)} tasks: too many to draw; see the cost table.</p>'
    by_id = {t.id: t for t in wp.tasks}
    stages = [list(s) for s in wp.stages] or [[t.id for t in wp.tasks]]
    placed = {n for s in stages for n in s}
    stages.extend([[t.id] for t in wp.tasks if t.id not in placed])
    position: dict[str, tuple[float, float]] = {}
    for col, stage in enumerate(stages):
        for row, name in enumerate(stage):
            position[name] = (20 + col * (NODE_W + COL_GAP), 20 + row * (NODE_H + ROW_GAP))
    width = 40 + len(stages) * (NODE_W + COL_GAP) - COL_GAP
    height = 40 + max(len(s) for s in stages) * (NODE_H + ROW_GAP) - ROW_GAP
    critical = set(wp.critical_path)
    critical_edges = set(zip(wp.critical_path, wp.critical_path[1:]))
    parts = [f'<svg id="{esc(graph_id)}" xmlns="http://www.w3.org/2000/svg" width="{num(width)}" '
             f'height="{num(height)}" viewBox="0 0 {num(width)} {num(height)}" role="img" '
             f'aria-label="Task graph of {esc(wp.workflow)}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#7f8c8d"/></marker>'
             '<marker id="arrow-critical" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#c0392b"/></marker></defs>']
    for t in wp.tasks:
        for d in t.depends:
            if d not in position:
                continue
            (x1, y1), (x2, y2) = position[d], position[t.id]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
            if x2 <= x1:  # same stage (should not happen): route around the left
                sx, ex = x1, x2
            mid = (sx + ex) / 2
            hot = (d, t.id) in critical_edges
            parts.append(f'<path class="edge" d="M {num(sx)} {num(sy)} C {num(mid)} {num(sy)}, {num(mid)} {num(ey)}, '
                         f'{num(ex)} {num(ey)}" fill="none" stroke="{"#c0392b" if hot else "#9aa3b1"}" '
                         f'stroke-width="{2.2 if hot else 1.3}" marker-end="url(#{"arrow-critical" if hot else "arrow"})"/>')
    for t in wp.tasks:
        x, y = position[t.id]
        hot = t.id in critical
        fill = "#eef3fd" if t.kind != "call" else "#f3eefa"
        parts.append(f'<g class="node" id="node-{esc(t.id)}"><title>{esc(t.id)}: {esc(model_text(t))}; '
                     f'{esc(t.route_reason)}; expected {esc(money(t.estimate.cost_usd_expected))}, worst '
                     f'{esc(money(t.estimate.cost_usd_worst))}, {t.estimate.latency_s:.1f}s</title>')
        parts.append(f'<rect x="{num(x)}" y="{num(y)}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" '
                     f'stroke="{"#c0392b" if hot else "#7f8c8d"}" stroke-width="{2.2 if hot else 1}"/>')
        label = t.id + fan_out_suffix(t, assumed, sign="\u00d7")
        parts.append(f'<text x="{num(x + 8)}" y="{num(y + 17)}" font-weight="600">{esc(_clip(label, 28))}</text>')
        parts.append(f'<text x="{num(x + 8)}" y="{num(y + 33)}">{esc(_clip(model_text(t), 30))}</text>')
        parts.append(f'<text class="muted" x="{num(x + 8)}" y="{num(y + 49)}">{esc(money(t.estimate.cost_usd_expected))} '
                     f'(worst {esc(money(t.estimate.cost_usd_worst))}), {t.estimate.latency_s:.1f}s</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def cost_table(plan: Plan, wp: WorkflowPlan, table_id: str) -> str:
    rubrics = rubric_names(plan, wp.workflow)
    assumed = assumed_fan_outs(plan) if wp is plan.entry else frozenset()  # W234 is the entry's
    return table(("task", "stage", "model", "why", "expected $", "worst $", "latency", "quality floor -> expected (rubric)",
                  "fallbacks"),
                 [(t.id + (" *" if t.on_critical_path else "") + fan_out_suffix(t, assumed), t.stage + 1, model_text(t), t.route_reason,
                   money(t.estimate.cost_usd_expected), money(t.estimate.cost_usd_worst),
                   f"{t.estimate.latency_s:.1f}s", quality_text(t, rubrics.get(t.id)), " -> ".join(t.fallbacks) or "-")
                  for t in wp.tasks], table_id=table_id, numeric=(4, 5, 6))


def render_plan_html(plan: Plan) -> str:
    wp, budget, totals = plan.entry, plan.budget, plan.totals
    fits = budget_verdict(plan, "worst case over budget (the run stops at the cap)")
    summary = cards([("expected cost", money(totals.cost_usd_expected)), ("worst cost", money(totals.cost_usd_worst)),
                     ("budget", money(budget.usd) if budget.usd is not None else "none"), ("verdict", fits),
                     ("critical path", f"{totals.latency_s:.1f}s"),
                     ("tokens", f"{totals.tokens_expected:,} expected, {totals.tokens_worst:,} worst"),
                     ("calls", f"{totals.calls_expected:g} expected, {totals.calls_worst} worst")])
    summary += (f"<p>Critical path: {esc(' -> '.join(wp.critical_path) or '-')} (red in the graph, * in the "
                f"table). Plan hash <code>{esc(plan.plan_hash)}</code>.</p>")
    subs = "".join(f"<h3>{esc(sub.workflow)}</h3><p>Per call: expected {esc(money(sub.totals.cost_usd_expected))}, "
                   f"worst {esc(money(sub.totals.cost_usd_worst))}, {sub.totals.latency_s:.1f}s</p>"
                   + render_graph(sub, f"graph-{sub.workflow}") + cost_table(plan, sub, f"cost-table-{sub.workflow}")
                   for sub in plan.subplans) or '<p class="empty">none</p>'
    notes = table(("kind", "code", "message"), [(n.kind, n.code, n.message) for n in plan.notes], table_id="notes-table")
    flags = [f"objective {plan.objective}", f"strategy {plan.strategy}", f"scheduling {plan.scheduling}"]
    if plan.provider_mode == "sim":
        flags.append("simulated providers")
    if plan.history_used:
        flags.append("with run history")
    body = "\n".join([
        f"<h1>Plan for workflow {esc(plan.workflow)}</h1>",
        f'<p class="sub">{esc(", ".join(flags))}</p>',
        section("totals", "Totals", summary),
        section("graph", "Task graph", "<p>Columns are stages that run in parallel; arrows are dependencies. "
                                       "Hover a task for its routing reason.</p>"
                                       + render_graph(wp, assumed=assumed_fan_outs(plan))),
        section("costs", "Cost table", cost_table(plan, wp, "cost-table")),
        section("subworkflows", "Called workflows", subs),
        section("notes", "Warnings and risks", notes),
    ])
    return page(f"bmad plan: {plan.workflow}", body)
