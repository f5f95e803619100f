"""Consensus among several models: vote, weighted, similarity, judge, ensemble, best_of, peer_review.

The interpreter hands in `ConsensusOps` (how to get one participant's parsed answer, how to ask a
model a free question, how to have a synthesiser merge answers); this module decides who is asked
what, tolerates failed participants while the quorum can still be met, and measures agreement.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

import anyio

from bmad.runtime.quality import agreement, canonical, parse_score, similarity_matrix
from bmad.runtime.returns import extract_json


@dataclass(frozen=True, slots=True)
class Candidate:
    model: str
    value: Any  # the parsed answer
    text: str
    slot: str


@dataclass(slots=True)
class ConsensusOutcome:
    value: Any
    text: str
    model: str
    quality: float
    agreement: float
    candidates: list[Candidate] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (model, error)


class QuorumNotMet(Exception):
    """`got`: how many participants back the best-supported answer (or answered at all, when
    too few did); `detail` says which, so the message never reads as a bare count."""

    def __init__(self, needed: int, got: int, failures: list[tuple[str, str]],
                 candidates: Sequence[Candidate] = (), detail: str = ""):
        failed = "; ".join(f"{m}: {e}" for m, e in failures[:4])
        super().__init__(f"consensus needs {needed} agreeing participant(s), got {got}"
                         + (f": {detail}" if detail else "")
                         + (f" ({failed})" if failed else ""))
        self.needed = needed
        self.got = got
        self.failures = failures
        self.candidates = list(candidates)  # the answers that did come (escalation builds on them)
        self.detail = detail


class ConsensusOps(Protocol):
    async def answer(self, model: str, slot: str,
                     followup: Sequence[tuple[str, str]] = ()) -> Candidate: ...

    async def ask(self, model: str, prompt: str, slot: str, *, purpose: str,
                  schema: dict | None = None, metadata: dict | None = None) -> str: ...

    async def synthesise(self, model: str, prompt: str, slot: str) -> Candidate: ...


async def gather_candidates(ops: ConsensusOps, models: Sequence[str], quorum: int, *,
                            slot_prefix: str = "p") -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Ask every participant concurrently; stop early once the quorum can no longer be met."""
    results: list[Candidate | None] = [None] * len(models)
    failures: list[tuple[str, str]] = []
    needed = max(1, quorum)

    async with anyio.create_task_group() as tg:
        async def one(i: int, model: str) -> None:
            try:
                results[i] = await ops.answer(model, f"{slot_prefix}{i}")
            except Exception as exc:  # a failed participant is tolerated while quorum holds
                if not _tolerable(exc):
                    raise
                # ModelFailed's text already starts with the model's name: keep its reason alone
                failures.append((model, getattr(exc, "reason", None) or str(exc)))
                if len(models) - len(failures) < needed:
                    tg.cancel_scope.cancel()

        for i, model in enumerate(models):
            tg.start_soon(one, i, model)
    candidates = [c for c in results if c is not None]
    if len(candidates) < needed:
        raise QuorumNotMet(needed, len(candidates), failures, candidates,
                           detail=f"only {len(candidates)} of {len(models)} participant(s) answered")
    return candidates, failures


def _tolerable(exc: BaseException) -> bool:
    from bmad.runtime.ledger import BudgetExhausted, UnpricedModel
    return not isinstance(exc, (BudgetExhausted, UnpricedModel))


def decide_vote(candidates: Sequence[Candidate], weights: dict[str, float] | None,
                quorum: int) -> ConsensusOutcome:
    """Majority (or weighted majority) over normalised answers. Only an answer that `quorum`
    participants gave can win; among those the heaviest does (ties: the earlier participant).
    Weighing before the quorum would let one heavy voter veto a quorum that others reached."""
    tally: dict[str, float] = defaultdict(float)
    support: Counter = Counter()
    first: dict[str, Candidate] = {}
    for c in candidates:
        key = canonical(c.value)
        tally[key] += (weights or {}).get(c.model, 1.0)
        support[key] += 1
        first.setdefault(key, c)
    order = list(first)
    eligible = [k for k in order if support[k] >= quorum]
    if not eligible:
        if not order:
            raise QuorumNotMet(max(1, quorum), 0, [], candidates, detail="no answer to vote on")
        best = max(order, key=lambda k: (support[k], tally[k], -order.index(k)))
        raise QuorumNotMet(quorum, support[best], [], candidates,
                           detail=f"the best-supported answer, {_brief(first[best].value)}, came "
                                  f"from {support[best]} of {len(candidates)}")
    winner = max(eligible, key=lambda k: (tally[k], -order.index(k)))
    total = sum(tally.values()) or 1.0
    ratio = tally[winner] / total
    chosen = first[winner]
    return ConsensusOutcome(chosen.value, chosen.text, chosen.model, ratio, ratio, list(candidates))


# Two free-text answers "agree" for a similarity quorum when their similarity (embedding cosine,
# or character n-grams without a model) reaches this: paraphrases score well above it, unrelated
# answers well below, on either measure. It measures closeness of wording and meaning, not
# correctness: "X is safe" and "X is not safe" are close.
AGREE_SIMILARITY = 0.5


def decide_medoid(candidates: Sequence[Candidate], quorum: int = 1) -> ConsensusOutcome:
    """The answer most similar to all the others; agreement is its mean similarity to them. With
    a quorum K, only an answer that K answers (itself included) are within AGREE_SIMILARITY of can
    be chosen: K participants must say much the same thing, as K must give the same vote."""
    n = len(candidates)
    if n == 0:
        raise QuorumNotMet(max(1, quorum), 0, [], candidates, detail="no answer to compare")
    if n == 1:
        if quorum > 1:
            raise QuorumNotMet(quorum, 1, [], candidates, detail="only one answer came")
        c = candidates[0]
        return ConsensusOutcome(c.value, c.text, c.model, 1.0, 1.0, list(candidates))
    sims = similarity_matrix([c.value for c in candidates])
    scores = [(sum(row) - 1.0) / (n - 1) for row in sims]
    support = [sum(1 for s in row if s >= AGREE_SIMILARITY) for row in sims]  # self included
    eligible = [i for i in range(n) if support[i] >= quorum]
    if not eligible:
        top = max(range(n), key=lambda i: (support[i], scores[i], -i))
        raise QuorumNotMet(quorum, support[top], [], candidates,
                           detail=f"the best-supported answer (from `{candidates[top].model}`) "
                                  f"has {support[top]} of {n} answers (itself included) within "
                                  f"similarity {AGREE_SIMILARITY:.2f}")
    best = max(eligible, key=lambda i: (scores[i], -i))
    c = candidates[best]
    return ConsensusOutcome(c.value, c.text, c.model, scores[best], scores[best], list(candidates))


def _brief(value: Any, limit: int = 40) -> str:
    """An answer quoted in an error, cut short (free text can be pages long)."""
    text = value if isinstance(value, str) else canonical(value)
    return repr(text if len(text) <= limit else text[:limit - 3] + "...")


def choose_schema(n: int) -> dict:
    return {"type": "object",
            "properties": {"best": {"type": "integer", "minimum": 1, "maximum": n},
                           "score": {"type": "number", "minimum": 0, "maximum": 1},
                           "critique": {"type": "string"}},
            "required": ["best", "score"]}


def judge_choice_prompt(request_text: str, shown: Sequence[Candidate], rubric: str | None) -> str:
    listing = "\n\n".join(f"Candidate {i + 1}:\n{c.text}" for i, c in enumerate(shown))
    return (f"Pick the best answer to the request below{f' by this rubric: {rubric}' if rubric else ''}.\n\n"
            f"Request:\n{request_text}\n\n{listing}\n\n"
            'Reply with JSON: {"best": <candidate number>, "score": <0..1 quality of the best>}')


def parse_choice(text: str, n: int) -> tuple[int | None, float | None]:
    score, _ = parse_score(text)
    try:
        data = extract_json(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("best", "choice", "winner", "candidate"):
            try:
                k = int(data.get(key))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            if 1 <= k <= n:
                return k - 1, score
    for m in re.finditer(r"\b(\d+)\b", text):
        k = int(m.group(1))
        if 1 <= k <= n:
            return k - 1, score
    return None, score


async def decide_by_judge(ops: ConsensusOps, judge: str, request_text: str,
                          candidates: Sequence[Candidate], rubric: str | None, rng: random.Random,
                          slot: str = "judge") -> ConsensusOutcome:
    """A judge picks the best candidate; the order it sees them in is shuffled (position bias).
    A reply naming no candidate is asked for once more; still none: `UnreadableVerdict`, so the
    caller decides another way and journals it (the first shown answer is a random pick)."""
    from bmad.runtime.quality import UnreadableVerdict, reask_prompt

    shown = list(candidates)
    rng.shuffle(shown)
    prompt = judge_choice_prompt(request_text, shown, rubric)
    reply = await ops.ask(judge, prompt, slot, purpose="judge", schema=choose_schema(len(shown)))
    index, score = parse_choice(reply, len(shown))
    if index is None:
        reply = await ops.ask(judge, reask_prompt(prompt, reply, "candidate number"),
                              f"{slot}/again", purpose="judge", schema=choose_schema(len(shown)))
        index, score = parse_choice(reply, len(shown))
        if index is None:
            raise UnreadableVerdict(judge, reply, candidates)
    chosen = shown[index]
    ratio = agreement([c.value for c in candidates])
    quality = score if score is not None else ratio
    return ConsensusOutcome(chosen.value, chosen.text, chosen.model, quality, ratio, list(candidates))


def ensemble_prompt(request_text: str, candidates: Sequence[Candidate]) -> str:
    listing = "\n\n".join(f"Answer {i + 1} ({c.model}):\n{c.text}" for i, c in enumerate(candidates))
    return (f"Merge these answers into one answer that keeps what each gets right and drops what "
            f"they get wrong.\n\nRequest:\n{request_text}\n\n{listing}")


def review_prompt(request_text: str, answer: str) -> str:
    return (f"Review a colleague's answer to this request. List concrete errors and omissions.\n\n"
            f"Request:\n{request_text}\n\nAnswer:\n{answer}")


def revise_followup(previous: str, critique: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return (("assistant", previous),
            ("user", f"A peer reviewed your answer:\n{critique}\n\nRevise your answer accordingly."))


async def run_consensus(method: str, ops: ConsensusOps, participants: Sequence[str], *,
                        quorum: int | None, judge: str | None, request_text: str,
                        rubric: str | None = None, rounds: int | None = None,
                        weights: dict[str, float] | None = None,
                        rng: random.Random | None = None,
                        exact: bool = False) -> ConsensusOutcome:
    """Run one consensus task. `exact`: answers are enums/JSON (compare exactly, not by similarity)."""
    rng = rng or random.Random(0)
    wanted = quorum or 1
    # Vote-like methods need `quorum` agreeing answers, so at least that many must succeed.
    candidates, failures = await gather_candidates(ops, participants, wanted)

    if method in ("vote", "weighted", "similarity"):
        try:
            if method == "similarity" and not exact:
                outcome = decide_medoid(candidates, wanted)
            else:
                outcome = decide_vote(candidates, weights if method == "weighted" else None, wanted)
        except QuorumNotMet as exc:  # the participants that failed explain a short quorum too
            raise QuorumNotMet(exc.needed, exc.got, failures, exc.candidates, exc.detail) from None
    elif method in ("judge", "best_of"):
        outcome = await decide_by_judge(ops, judge or participants[0], request_text, candidates,
                                        rubric, rng)
    elif method == "ensemble":
        merged = await ops.synthesise(judge or participants[0],
                                      ensemble_prompt(request_text, candidates), "ensemble")
        ratio = agreement([c.value for c in candidates]) if exact else \
            decide_medoid(candidates).agreement
        outcome = ConsensusOutcome(merged.value, merged.text, merged.model, ratio, ratio,
                                   list(candidates))
    elif method == "peer_review":
        current = list(candidates)
        for r in range(rounds or 1):
            n = len(current)
            if n < 2:
                break
            critiques: list[str | None] = [None] * n

            async with anyio.create_task_group() as tg:
                async def review(i: int) -> None:
                    target = (i + 1) % n
                    critiques[target] = await ops.ask(
                        current[i].model, review_prompt(request_text, current[target].text),
                        f"r{r}/review{i}", purpose="review")
                for i in range(n):
                    tg.start_soon(review, i)
            revised: list[Candidate | None] = [None] * n

            async with anyio.create_task_group() as tg:
                async def revise(i: int) -> None:
                    revised[i] = await ops.answer(
                        current[i].model, f"r{r}/revise{i}",
                        revise_followup(current[i].text, critiques[i] or ""))
                for i in range(n):
                    tg.start_soon(revise, i)
            current = [c for c in revised if c is not None]
        outcome = decide_vote(current, None, 1) if exact else decide_medoid(current)
        outcome.candidates = list(candidates) + [c for c in current if c not in candidates]
    else:
        raise ValueError(f"unknown consensus method {method!r}")
    outcome.failures = failures
    return outcome


# A vote's weight when nothing is known of its model (no planned quality, no declared skill).
UNKNOWN_WEIGHT = 0.5
# The least a vote weighs: a model measured at 0 still breaks ties, and the share stays defined.
MIN_WEIGHT = 0.01


def vote_weights(models: Sequence[str], planned: Iterable[Any] = (),
                 skill_of: Callable[[str], float | None] | None = None) -> dict[str, float]:
    """Each model's vote in `consensus weighted`: the quality the plan expects of it on this task
    (`planned`: the TaskPlan's candidates; their `expected_quality` is the quality measured in the
    journal's history, its verdicts, when the planner had enough of it, else the declared skill);
    for a model the plan did not rate, its declared skill (`skill_of`); else UNKNOWN_WEIGHT."""
    expected = {c.model: c.expected_quality for c in planned
                if getattr(c, "expected_quality", None) is not None}
    weights: dict[str, float] = {}
    for m in models:
        w = expected.get(m)
        if w is None and skill_of is not None:
            w = skill_of(m)
        # `is None`, not `or`: a measured 0 is knowledge, not a missing value
        weights[m] = UNKNOWN_WEIGHT if w is None else min(1.0, max(MIN_WEIGHT, float(w)))
    return weights


def decide_escalated(candidates: Sequence[Candidate], *, exact: bool, quorum: int,
                     weights: dict[str, float] | None = None) -> ConsensusOutcome:
    """Re-decide after an escalation added answers: a vote for exact answers, else the medoid."""
    if exact:
        return decide_vote(candidates, weights, quorum)
    return decide_medoid(candidates, quorum)


def verdicts(candidates: Sequence[Candidate], decided: Any, *, exact: bool) -> list[tuple[str, float]]:
    """How far each answer is borne out: exact answers (enums, JSON) score 1/0 for matching the
    decision; free text scores its mean similarity to the *other* answers (the medoid's similarity
    to the decision would be its similarity to itself).

    Journaled per model and capability, these are the run-time quality signal history learns
    from: no ground truth, only agreement.
    """
    if exact:
        target = canonical(decided)
        return [(c.model, 1.0 if canonical(c.value) == target else 0.0) for c in candidates]
    sims = similarity_matrix([c.value for c in candidates])
    out = []
    for i, c in enumerate(candidates):
        others = [sims[i][j] for j in range(len(candidates)) if j != i]
        out.append((c.model, round(sum(others) / len(others), 4) if others else 1.0))
    return out
