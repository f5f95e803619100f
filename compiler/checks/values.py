"""Numbers out of range: thresholds and skills outside 0..1, temperature outside 0..2, counts below
one, negative prices, budgets and times, chunks too small to reduce, token counts beyond any model
(the runtime's integers, SQLite's among them, would overflow on them).

A task's scalar clauses (temperature, max_tokens, timeout) are reported where they were written;
a clause with no span of its own (a workflow's quality, IR from elsewhere) at the name of its task
or workflow, and the message names the clause.
"""

from __future__ import annotations

from bmad.compiler import ir
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, error
from bmad.compiler.literals import MAX_TOKENS_CEILING, TOKEN_BUDGET_CEILING




def at(span: ir.Span, fallback: ir.Span) -> ir.Span:
    return span if span != ir.NO_SPAN else fallback


def number(value: float) -> str:
    return f"{value:g}"


def check_budget(budget: ir.Budget | None, owner: str, fallback: ir.Span, out: list[Diagnostic]) -> None:
    if budget is None:
        return
    span = at(budget.span, fallback)
    for amount, text in ((budget.usd, "dollars"), (budget.tokens, "tokens"), (budget.time_s, "seconds")):
        if amount is not None and amount < 0:
            out.append(error("BMAD-E185", span, f"the budget of {owner} is negative ({number(amount)} {text})",
                             "a budget is a limit of zero or more"))
    if budget.tokens is not None and budget.tokens > TOKEN_BUDGET_CEILING:
        out.append(error("BMAD-E193", span, f"the token budget of {owner} ({budget.tokens:,}) is beyond "
                         f"any real spend (at most {TOKEN_BUDGET_CEILING:,})",
                         "write the tokens you mean to allow, e.g. `budget 2M tokens`, or leave "
                         "tokens out of the budget"))


def check_threshold(value: float, span: ir.Span, what: str, out: list[Diagnostic]) -> None:
    if not 0 <= value <= 1:
        out.append(error("BMAD-E180", span, f"{what} {number(value)} is outside 0..1",
                         "quality is a score from 0 (worst) to 1 (best), e.g. `quality >= 0.8`"))


def check_task(task: ir.Task, out: list[Diagnostic]) -> None:
    owner = f"task `{task.name}`"
    name_span = task.name_span
    if task.temperature is not None and not 0 <= task.temperature <= 2:
        out.append(error("BMAD-E182", at(task.temperature_span, name_span),
                         f"`temperature {number(task.temperature)}` of {owner} is outside 0..2",
                         "use 0 for repeatable answers, up to 2 for the most varied"))
    if task.max_tokens is not None and task.max_tokens < 1:
        out.append(error("BMAD-E183", at(task.max_tokens_span, name_span), f"`max_tokens {task.max_tokens}` of {owner} allows no answer",
                         "use a positive count, e.g. `max_tokens 500`"))
    elif task.max_tokens is not None and task.max_tokens > MAX_TOKENS_CEILING:
        out.append(error("BMAD-E193", at(task.max_tokens_span, name_span), f"`max_tokens {task.max_tokens:,}` of {owner} is more "
                         f"than any model writes in one answer (at most {MAX_TOKENS_CEILING:,})",
                         "use the most the answer needs, e.g. `max_tokens 4000`"))
    if task.timeout_s is not None and task.timeout_s <= 0:
        out.append(error("BMAD-E188", at(task.timeout_span, name_span), f"`timeout` of {owner} is not a positive time",
                         "use a duration such as `timeout 30s`"))
    retry = task.retry
    if retry is not None:
        span = at(retry.span, name_span)
        # IR attempts count the first try (`retry N` lowers to N + 1), so only IR from other
        # tools can allow none; `retry 0` is one attempt and no retry.
        if retry.attempts < 1:
            out.append(error("BMAD-E186", span, f"the retry policy of {owner} allows no attempt "
                             f"({retry.attempts} attempts in total)",
                             "attempts count the first try: 1 or more (`retry 0` in .bmad, "
                             "`max_attempts: 1` in YAML, is one attempt and no retry)"))
        for bound in (retry.min_s, retry.max_s):
            if bound is not None and bound < 0:
                out.append(error("BMAD-E188", span, f"the retry backoff of {owner} has a negative time",
                                 "use durations such as `1s to 20s`"))
                break
        # A backoff range that runs backwards is reported by the front ends (BMAD-E019, BMAD-E08x).
    quality = task.quality
    if quality is not None:
        span = at(quality.span, name_span)
        check_threshold(quality.threshold, span, f"the quality threshold of {owner}", out)
        if quality.rounds is not None and quality.rounds < 1:
            out.append(error("BMAD-E190", span,
                             f"`else {'refine max' if quality.otherwise == 'refine' else quality.otherwise} {quality.rounds}` "
                             f"of {owner} allows no further try",
                             "use 1 or more, e.g. `else refine max 3`"))
    check_budget(task.budget, owner, name_span, out)
    if task.reduce is not None and task.reduce.chunk_size is not None and task.reduce.chunk_size < 2:
        out.append(error("BMAD-E191", at(task.reduce.span, name_span),
                         f"`in chunks of {task.reduce.chunk_size}` in {owner} can't combine anything",
                         "use chunks of 2 or more, or drop `in chunks of` to reduce everything at once"))


def check_model(model: ir.Model, out: list[Diagnostic]) -> None:
    owner = f"model `{model.name}`"
    for skill in model.skills:
        if not 0 <= skill.score <= 1:
            out.append(error("BMAD-E181", at(skill.span, model.name_span),
                             f"skill `{skill.name} {number(skill.score)}` of {owner} is outside 0..1",
                             "a skill is the expected quality from 0 to 1, e.g. `code 0.85`"))
    price = model.price
    if price is not None and (price.input_per_m < 0 or price.output_per_m < 0):
        out.append(error("BMAD-E184", at(price.span, model.name_span), f"the price of {owner} is negative",
                         "prices are dollars per million tokens, zero or more: `price input $0.15 output $0.60 per 1M`"))
    if model.context is not None and model.context < 1:
        out.append(error("BMAD-E189", model.name_span, f"the context of {owner} holds no tokens",
                         "give the context window in tokens, e.g. `context 128k`"))
    latency = model.latency
    if latency is not None and (latency.base_s < 0 or latency.per_token_s < 0):
        out.append(error("BMAD-E192", at(latency.span, model.name_span), f"the latency of {owner} is negative",
                         "e.g. `latency 600ms + 12ms per token`"))


def check_provider(provider: ir.Provider, out: list[Diagnostic]) -> None:
    limits = provider.limits
    if limits is not None:
        for value, text in ((limits.rpm, "rpm"), (limits.tpm, "tpm"), (limits.concurrent, "concurrent")):
            if value is not None and value < 1:
                out.append(error("BMAD-E189", at(limits.span, provider.name_span),
                                 f"`{text} {value}` of provider `{provider.name}` allows no request",
                                 "limits are counts of one or more; remove a limit you don't need"))
    if provider.timeout_s is not None and provider.timeout_s <= 0:
        out.append(error("BMAD-E188", provider.name_span, f"the timeout of provider `{provider.name}` is not a positive time",
                         "use a duration such as `timeout 60s`"))


def check_values(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    program = index.program
    for provider in program.providers:
        check_provider(provider, out)
    for model in program.models:
        check_model(model, out)
    for workflow in program.workflows:
        owner = f"workflow `{workflow.name}`"
        check_budget(workflow.budget, owner, workflow.name_span, out)
        if workflow.quality is not None:
            check_threshold(workflow.quality, workflow.name_span, f"the quality floor of {owner}", out)
        for task in workflow.tasks:
            check_task(task, out)
    return out
