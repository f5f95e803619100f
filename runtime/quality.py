"""Quality scorers: a judge with a rubric (its score parsed robustly), JSON Schema validity, a regex
match, and agreement between candidates (sentence embeddings when a model is installed offline,
else character n-gram similarity; exact for enums/JSON).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Sequence

from bmad.runtime.returns import extract_json, schema_errors

DEFAULT_RUBRIC = ("How well does the answer fulfil the request: correct, complete, specific, and "
                  "in the requested form?")

_NUMBER = r"(-?\d+(?:\.\d+)?)"


def judge_prompt(request_text: str, answer: str, rubric: str | None) -> str:
    return (
        "You are a strict reviewer. Score the answer below against the rubric.\n"
        f"Rubric: {rubric or DEFAULT_RUBRIC}\n\n"
        f"Request:\n{request_text}\n\nAnswer:\n{answer}\n\n"
        'Reply with JSON: {"score": <a number from 0 to 1>, "critique": "<what to improve>"}'
    )


JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1},
                   "critique": {"type": "string"}},
    "required": ["score"],
}


class UnreadableVerdict(Exception):
    """A judge's reply named no choice, even when asked again: the caller decides another way (and
    journals it) rather than take whichever answer happened to come first."""

    def __init__(self, judge: str, reply: str, candidates: Sequence[Any]):
        super().__init__(f"judge {judge} named no candidate: {reply[:80]!r}")
        self.judge = judge
        self.reply = reply
        self.candidates = list(candidates)


def reask_prompt(prompt: str, reply: str, wanted: str) -> str:
    """The judge's prompt once more, after a reply with no readable verdict: some judges answer
    in prose first, or are cut short; the reply is shown so it can be put in the form asked for."""
    return (f"{prompt}\n\nYour previous reply gave no {wanted} that could be read:\n"
            f"{reply[:2000]}\n\nReply again with the JSON object only, including the {wanted}.")


def review_note(score: float | None, bar: float, critique: str) -> str:
    """What a refine round tells the model about its answer (from the gate's verdict)."""
    if score is None:
        return f"A reviewer could not score this answer (needed {bar:.2f}). Comments: {critique}"
    return f"A reviewer scored this answer {score:.2f} (needed {bar:.2f}). Critique: {critique}"


def refine_followup(previous: str, note: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return (("assistant", previous),
            ("user", f"{note}\nImprove the answer; reply with the full revised answer."))


def parse_score(text: str) -> tuple[float | None, str]:
    """A 0..1 score and a critique from a judge's reply, however it chose to write it.

    Accepts JSON (`score`/`rating`/`quality`), `7/10`, `85%`, `Score: 0.8`, a bare number; scales
    out-of-range numbers (1-10, 1-100) into 0..1. None when no score can be read.
    """
    critique = ""
    try:
        data = extract_json(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        critique = str(data.get("critique") or data.get("feedback") or data.get("reason") or "")
        for key in ("score", "rating", "quality", "grade"):
            if key in data:
                score = _to_unit(data[key])
                if score is not None:
                    return score, critique
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        return _to_unit(data), ""
    critique = critique or text.strip()
    m = re.search(_NUMBER + r"\s*/\s*" + _NUMBER, text)
    if m and float(m.group(2)) > 0:
        return _clip(float(m.group(1)) / float(m.group(2))), critique
    m = re.search(_NUMBER + r"\s*%", text)
    if m:
        return _clip(float(m.group(1)) / 100.0), critique
    m = re.search(r"(?:score|rating|quality)\W{0,3}" + _NUMBER, text, re.IGNORECASE)
    if m is None:
        m = re.search(_NUMBER, text)
    if m:
        return _to_unit(float(m.group(1))), critique
    return None, critique


def _to_unit(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if x != x:  # NaN
        return None
    if x > 1.0:
        x = x / 10.0 if x <= 10.0 else x / 100.0
    return _clip(x)


def _clip(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def schema_validity(value: Any, schema: Any) -> float:
    return 0.0 if schema_errors(value, schema) else 1.0


def regex_match(text: str, pattern: str) -> float:
    return 1.0 if re.search(pattern, text) else 0.0


# ----------------------------------------------------------------------------------------------
# Agreement between candidates


def canonical(value: Any) -> str:
    """The form answers are compared in: JSON canonicalised, text stripped and case-folded."""
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def ngrams(text: str, n: int = 3) -> Counter:
    text = f" {' '.join(text.split()).casefold()} "
    if len(text) < n:
        return Counter({text: 1})
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))


_CODE_FENCE = re.compile(r"```[\w+#.-]*[ \t]*\r?\n(.*?)```", re.S)


def fenced_code(text: str) -> str | None:
    """The code of an answer's fenced blocks (joined), or None when it has none."""
    blocks = _CODE_FENCE.findall(text)
    return "\n".join(blocks) if blocks else None


def similarity(a: Any, b: Any, n: int = 3) -> float:
    """Cosine similarity of character n-gram counts, 0..1. Two answers that both hold fenced code
    blocks are compared by their code alone: the prose around code says little about whether two
    programs do the same thing."""
    if isinstance(a, str) and isinstance(b, str):
        code_a, code_b = fenced_code(a), fenced_code(b)
        if code_a is not None and code_b is not None:
            a, b = code_a, code_b
    ga, gb = ngrams(canonical(a), n), ngrams(canonical(b), n)
    if not ga or not gb:
        return 1.0 if ga == gb else 0.0
    dot = sum(c * gb.get(g, 0) for g, c in ga.items())
    norm = (sum(c * c for c in ga.values()) * sum(c * c for c in gb.values())) ** 0.5
    return dot / norm if norm else 0.0


def similarity_matrix(values: Sequence[Any]) -> list[list[float]]:
    """Pairwise similarity of answers, 0..1, 1 on the diagonal: cosine of sentence embeddings
    when an embedding model is installed offline (`runtime/embeddings.py`), else `similarity`
    (character n-grams). Answers holding fenced code are always compared by their code's n-grams:
    a sentence model reads prose, not programs."""
    n = len(values)
    sims = [[1.0] * n for _ in range(n)]
    if n < 2:
        return sims
    embed = None
    if not any(isinstance(v, str) and fenced_code(v) is not None for v in values):
        from bmad.runtime.embeddings import embedder  # noqa: PLC0415 (loads a model lazily)

        embed = embedder()
    if embed is not None:
        vectors = embed([v if isinstance(v, str) else canonical(v) for v in values])
        for i in range(n):
            for j in range(i + 1, n):
                cosine = sum(a * b for a, b in zip(vectors[i], vectors[j]))
                sims[i][j] = sims[j][i] = min(1.0, max(0.0, cosine))
        return sims
    for i in range(n):
        for j in range(i + 1, n):
            sims[i][j] = sims[j][i] = similarity(values[i], values[j])
    return sims


def agreement(values: Sequence[Any]) -> float:
    """Share of candidates that give the most common (canonical) answer."""
    if not values:
        return 0.0
    counts = Counter(canonical(v) for v in values)
    return counts.most_common(1)[0][1] / len(values)
