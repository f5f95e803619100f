"""Render a sealed plan for people and tools: a rich text table, mermaid, dot, yaml, and a diff.

The text view is what a reviewer reads before spending money (Terraform's plan, Infracost's cost
table): one table per parallel stage (task, model, why, expected and worst $, latency, quality
floor -> expected, fallbacks), the totals against the budget, the critical path, the warnings and
the risk analysis. `render_diff` compares an older plan's JSON with a new plan (routing and cost).
"""

from __future__ import annotations

import io
import json
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bmad.compiler.money import format_usd
from bmad.compiler.plan import Plan, TaskPlan, format_latency, format_seconds

ASSUMED_FAN_OUT = "BMAD-W234"  # a plan risk: a `for each` size the plan assumed (compiler/passes/expand.py)


def money(value: float | None) -> str:
    return format_usd(value, unknown="?")


def rubric_names(plan: Plan, workflow: str) -> dict[str, str]:
    """Task id -> the named rubric its quality gate uses (`quality >= X rubric grounded`)."""
    wf = plan.program.workflow(workflow)
    if wf is None:
        return {}
    return {t.name: t.quality.rubric_name for t in wf.tasks
            if t.quality is not None and t.quality.rubric_name}


def quality_text(t: TaskPlan, rubric: str | None = None) -> str:
    """The quality floor -> expected quality, and the named rubric the judge applies."""
    floor = "-" if t.quality_floor is None else f"{t.quality_floor:.2f}"
    expected = "?" if t.expected_quality is None else f"{t.expected_quality:.2f}"
    return f"{floor} -> {expected}" + (f" ({rubric})" if rubric else "")


def assumed_fan_outs(plan: Plan) -> set[str]:
    """The entry workflow's tasks whose `for each` size the plan assumed (BMAD-W234): shown `x10?`."""
    return {n.task for n in plan.notes
            if n.code == ASSUMED_FAN_OUT and n.task and n.message.startswith(f"`{n.task}` ")}


def fan_out_suffix(t, assumed: set[str] | frozenset[str], sign: str = "x") -> str:
    """` x10` after a `for each` task's name, ` x10?` when the plan assumed the size (BMAD-W234)."""
    if not t.fan_out:
        return ""
    return f" {sign}{t.fan_out}" + ("?" if t.id in assumed else "")


def budget_verdict(plan: Plan, over_worst: str = "worst case over budget, the run stops at the cap") -> str:
    """The dollar budget against the totals: `fits` only when the worst case (what the run can
    spend at most) is known and within it."""
    totals, usd = plan.totals, plan.budget.usd
    if usd is None:
        return "no dollar budget"
    if totals.cost_usd_worst is None or totals.cost_usd_expected is None:
        return "unknown"
    if totals.cost_usd_worst <= usd:
        return "fits"
    return over_worst if totals.cost_usd_expected <= usd else "over budget"


def model_text(t: TaskPlan) -> str:
    if t.kind == "call":
        return f"workflow {t.subworkflow}"
    if t.participants:
        text = ", ".join(t.participants)
        return text + (f" (judge {t.judge})" if t.judge else "")
    return t.model or "?"


def _console(width: int) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=width, force_terminal=False, color_system=None,
                   highlight=False, soft_wrap=False), buffer


def render_text(plan: Plan, *, width: int = 140) -> str:
    console, buffer = _console(width)
    wp = plan.entry
    budget = plan.budget
    console.print(Text(f"Plan for workflow {plan.workflow}  (objective {plan.objective}, strategy "
                       f"{plan.strategy}, scheduling {plan.scheduling}"
                       + (", simulated providers" if plan.provider_mode == "sim" else "")
                       + (", with run history" if plan.history_used else "") + ")", style="bold"))
    by_id = {t.id: t for t in wp.tasks}
    rubrics = rubric_names(plan, wp.workflow)
    assumed = assumed_fan_outs(plan)
    for index, stage in enumerate(wp.stages):
        table = Table(title=f"stage {index + 1}" + (" (parallel)" if len(stage) > 1 else ""),
                      title_justify="left", show_lines=False, expand=False)
        for column, justify in (("task", "left"), ("model", "left"), ("why", "left"), ("exp $", "right"),
                                ("worst $", "right"), ("latency", "right"), ("quality", "left"),
                                ("fallbacks", "left")):
            table.add_column(column, justify=justify, overflow="fold")
        for name in stage:
            t = by_id[name]
            label = t.id + (" *" if t.on_critical_path else "") + fan_out_suffix(t, assumed)
            table.add_row(label, model_text(t), t.route_reason, money(t.estimate.cost_usd_expected),
                          money(t.estimate.cost_usd_worst), format_latency(t.estimate.latency_s), quality_text(t, rubrics.get(t.id)),
                          ", ".join(t.fallbacks) or "-")
        console.print(table)
    totals = wp.totals
    console.print(Text("Totals", style="bold"))
    console.print(f"  cost      expected {money(totals.cost_usd_expected)}, worst {money(totals.cost_usd_worst)}"
                  + (f"  (budget {money(budget.usd)}: {budget_verdict(plan)})"
                     if budget.usd is not None else "  (no dollar budget)"))
    console.print(f"  tokens    expected {totals.tokens_expected:,}, worst {totals.tokens_worst:,}"
                  + (f"  (budget {budget.tokens:,})" if budget.tokens is not None else ""))
    console.print(f"  latency   {format_latency(totals.latency_s)} on the critical path"
                  + (" (every task, one at a time)" if plan.strategy == "sequential" else "")
                  + (f"  (budget {format_seconds(budget.time_s)})" if budget.time_s is not None else ""))
    console.print(f"  calls     expected {totals.calls_expected:g}, worst {totals.calls_worst}")
    console.print(Text("Critical path", style="bold"))
    console.print("  " + (" -> ".join(wp.critical_path) or "-") + "   (* in the tables)")
    for sub in plan.subplans:
        console.print(Text(f"Subworkflow {sub.workflow}", style="bold"))
        console.print(f"  per call: expected {money(sub.totals.cost_usd_expected)}, worst "
                      f"{money(sub.totals.cost_usd_worst)}, {format_latency(sub.totals.latency_s)}; tasks: "
                      + ", ".join(f"{t.id}={model_text(t)}" for t in sub.tasks))
    warnings = [n for n in plan.notes if n.kind not in ("risk", "info")]
    risks = [n for n in plan.notes if n.kind == "risk"]
    infos = [n for n in plan.notes if n.kind == "info"]
    if infos:
        console.print(Text("Notes", style="bold"))
        for n in infos:
            console.print(f"  {n.message}")
    if warnings:
        console.print(Text("Warnings", style="bold"))
        for n in warnings:
            console.print(f"  {n.code}: {n.message}")
    if risks:
        console.print(Text("Risks", style="bold"))
        for n in risks:
            console.print(f"  {n.code}: {n.message}")
    console.print(f"plan hash {plan.plan_hash}")
    return buffer.getvalue()


def _node_id(name: str) -> str:
    return "t_" + "".join(c if c.isalnum() else "_" for c in name)


def render_mermaid(plan: Plan) -> str:
    lines = ["flowchart TD"]
    assumed = assumed_fan_outs(plan)
    for t in plan.entry.tasks:
        label = f"{t.id}{fan_out_suffix(t, assumed)}<br/>{model_text(t)}<br/>{money(t.estimate.cost_usd_expected)} (worst {money(t.estimate.cost_usd_worst)})"
        lines.append(f'  {_node_id(t.id)}["{label.replace(chr(34), "#quot;")}"]')
    for t in plan.entry.tasks:
        for d in t.depends:
            lines.append(f"  {_node_id(d)} --> {_node_id(t.id)}")
    if plan.entry.critical_path:
        lines.append("  classDef critical stroke:#c00,stroke-width:3px")
        lines.append("  class " + ",".join(_node_id(n) for n in plan.entry.critical_path) + " critical")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(plan: Plan) -> str:
    critical = set(plan.entry.critical_path)
    lines = [f"digraph {_dot_quote(plan.workflow)} {{", "  rankdir=LR;", "  node [shape=box];"]
    assumed = assumed_fan_outs(plan)
    for t in plan.entry.tasks:
        label = f"{t.id}{fan_out_suffix(t, assumed)}\\n{model_text(t)}\\n{money(t.estimate.cost_usd_expected)} (worst {money(t.estimate.cost_usd_worst)})"
        style = ", color=red, penwidth=2" if t.id in critical else ""
        lines.append(f'  {_dot_quote(t.id)} [label="{label.replace(chr(34), chr(39))}"{style}];')
    for t in plan.entry.tasks:
        for d in t.depends:
            lines.append(f"  {_dot_quote(d)} -> {_dot_quote(t.id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_yaml(plan: Plan) -> str:
    """The plan's JSON without the embedded program (which `--format json` keeps for the runtime)."""
    data = plan.to_json()
    data.pop("program", None)
    return yaml.safe_dump(data, sort_keys=True, allow_unicode=True)


def render_json(plan: Plan) -> str:
    return plan.dumps() + "\n"


def diff_plans(old: dict[str, Any], new: Plan) -> list[dict[str, Any]]:
    """Per task: what changed in routing and cost between `old` (a plan's JSON) and `new`."""
    old_tasks = {t["id"]: t for t in old.get("tasks", [])}
    new_tasks = {t["id"]: t for t in new.to_json()["tasks"]}
    rows = []
    for task_id in list(old_tasks) + [t for t in new_tasks if t not in old_tasks]:
        a, b = old_tasks.get(task_id), new_tasks.get(task_id)
        if a is None or b is None:
            rows.append({"task": task_id, "change": "added" if a is None else "removed",
                         "model_old": a and a.get("model"), "model_new": b and b.get("model"),
                         "cost_old": a and a["estimate"].get("cost_usd_expected"),
                         "cost_new": b and b["estimate"].get("cost_usd_expected")})
            continue
        changed = [k for k in ("model", "fallbacks", "cascade", "judge") if a.get(k) != b.get(k)]
        ca, cb = a["estimate"].get("cost_usd_expected"), b["estimate"].get("cost_usd_expected")
        wa, wb = a["estimate"].get("cost_usd_worst"), b["estimate"].get("cost_usd_worst")
        if changed or ca != cb or wa != wb:
            rows.append({"task": task_id, "change": "changed", "fields": changed,
                         "model_old": a.get("model"), "model_new": b.get("model"),
                         "cost_old": ca, "cost_new": cb, "worst_old": wa, "worst_new": wb})
    return rows


def _delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "?"
    d = b - a
    return ("+" if d >= 0 else "-") + money(abs(d))


def _models(value: Any) -> str:
    if value is None:
        return "-"
    return ", ".join(value) if isinstance(value, list) else str(value)


def render_diff(old: dict[str, Any], new: Plan, *, width: int = 140) -> str:
    console, buffer = _console(width)
    rows = diff_plans(old, new)
    console.print(Text(f"Plan diff for workflow {new.workflow}: {old.get('plan_hash', '?')[:12]} -> "
                       f"{new.plan_hash[:12]}", style="bold"))
    old_workflow = old.get("workflow")
    if old_workflow is not None and old_workflow != new.workflow:  # tasks compared by name only
        console.print(Text(f"  note: the old plan is of workflow {old_workflow}, not {new.workflow}; "
                           "tasks are matched by name", style="yellow"))
    if not rows:
        console.print("  no change in routing or cost")
    else:
        table = Table(show_lines=False)
        for column, justify in (("task", "left"), ("change", "left"), ("model", "left"),
                                ("exp $", "right"), ("delta", "right")):
            table.add_column(column, justify=justify, overflow="fold")
        for r in rows:
            model = _models(r["model_new"]) if r["model_old"] == r["model_new"] else \
                f"{_models(r['model_old'])} -> {_models(r['model_new'])}"
            table.add_row(("+ " if r["change"] == "added" else "- " if r["change"] == "removed" else "~ ") + r["task"],
                          r["change"] + (f" ({', '.join(r['fields'])})" if r.get("fields") else ""),
                          model, f"{money(r['cost_old'])} -> {money(r['cost_new'])}",
                          _delta(r["cost_old"] or 0.0 if r["change"] == "added" else r["cost_old"],
                                 r["cost_new"] or 0.0 if r["change"] == "removed" else r["cost_new"]))
        console.print(table)
    old_totals, new_totals = old.get("totals", {}), new.totals
    console.print(f"  expected {money(old_totals.get('cost_usd_expected'))} -> {money(new_totals.cost_usd_expected)} "
                  f"({_delta(old_totals.get('cost_usd_expected'), new_totals.cost_usd_expected)}), worst "
                  f"{money(old_totals.get('cost_usd_worst'))} -> {money(new_totals.cost_usd_worst)} "
                  f"({_delta(old_totals.get('cost_usd_worst'), new_totals.cost_usd_worst)})")
    return buffer.getvalue()


def render_passes(passes: list[tuple[str, str]]) -> str:
    return "\n".join(f"{i + 1}. {name}: {doc}" for i, (name, doc) in enumerate(passes)) + "\n"


def render(plan: Plan, fmt: str) -> str:
    return {"text": render_text, "json": render_json, "yaml": render_yaml, "mermaid": render_mermaid,
            "dot": render_dot}[fmt](plan)


__all__ = ["fan_out_suffix", "render", "render_text", "render_json", "render_yaml", "render_mermaid", "render_dot",
           "render_diff", "diff_plans", "render_passes", "money", "json"]
