"""The replay provider: serves recorded responses, with their recorded cost and usage, from files.

`provider r { kind replay; data "answers.csv" }` answers each call from a recording, matched by
prompt id (`request.metadata["prompt_id"]`) or by prompt text. `data` is a CSV or JSONL file, or a
folder of them. Two layouts are read:

- *wide* (RouterBench's own layout, read directly): one row per prompt with `sample_id`, `prompt`
  (often a Python list literal like `['text']`), and per recorded model `MODEL|model_response`,
  `MODEL|total_cost` and `MODEL` (its correctness, kept as `raw["recorded_quality"]`). Every
  recorded MODEL is usable as a model: its model id is the column's model name.
- *long*: one record per (prompt, model) with `prompt_id` (or `id`/`sample_id`), `prompt`, `model`
  (optional: a record without one serves any model), `response` (or `text`/`output`/`completion`),
  and optionally `cost_usd` (or `cost`/`total_cost`), `input_tokens`, `output_tokens`,
  `latency_s`, `quality`.

Files are read lazily on the first call (in a worker thread) and indexed once. Token counts that
weren't recorded are estimated as characters / 4 and flagged `raw["tokens_estimated"]`.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import anyio

from bmad.runtime.providers import base
from bmad.runtime.providers.health import HealthReport

_RESPONSE_SUFFIX = "|model_response"
_COST_SUFFIX = "|total_cost"
_ID_FIELDS = ("prompt_id", "sample_id", "id")
_TEXT_FIELDS = ("response", "text", "output", "completion", "model_response")
_COST_FIELDS = ("cost_usd", "cost", "total_cost")
_SPACE = re.compile(r"\s+")

# Indexes already read in this process, by (file, mtime, size): many runs over the same recordings
# (a benchmark, a test session) parse them once. A changed file has a new key.
_LOADED: dict[tuple, "ReplayIndex"] = {}


@dataclass(frozen=True, slots=True)
class Recording:
    prompt_id: str
    prompt: str
    model: str | None  # None: serves any model
    text: str
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    latency_s: float | None
    quality: float | None
    source: str


class ReplayIndex:
    """Recordings indexed by (prompt id | normalised prompt text) and model."""

    def __init__(self, recordings: Iterable[Recording]):
        self.by_id: dict[str, dict[str | None, Recording]] = {}
        self.by_text: dict[str, dict[str | None, Recording]] = {}
        self.models: set[str] = set()
        self.count = 0
        for rec in recordings:
            self.count += 1
            if rec.model:
                self.models.add(rec.model)
            if rec.prompt_id:
                self.by_id.setdefault(rec.prompt_id, {}).setdefault(rec.model, rec)
            if rec.prompt:
                self.by_text.setdefault(normalise_prompt(rec.prompt), {}).setdefault(rec.model, rec)
        # Longest first, so a rendered prompt that embeds a recorded one finds the most specific.
        self._texts_longest_first = sorted(self.by_text, key=len, reverse=True)
        self._embedded: dict[str, str | None] = {}  # rendered prompt -> the recorded one inside

    def lookup(self, prompt_id: str | None, prompt: str) -> dict[str | None, Recording] | None:
        if prompt_id is not None and str(prompt_id) in self.by_id:
            return self.by_id[str(prompt_id)]
        key = normalise_prompt(prompt)
        hit = self.by_text.get(key)
        if hit is not None:
            return hit
        # A rendered prompt (instructions around the recorded question) still finds its recording.
        # The scan is remembered: every model of a consensus asks the same rendered prompt.
        if key in self._embedded:
            found = self._embedded[key]
            return None if found is None else self.by_text[found]
        found = next((text for text in self._texts_longest_first
                      if len(text) >= 16 and text in key), None)
        self._embedded[key] = found
        return None if found is None else self.by_text[found]


def normalise_prompt(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


class ReplayProvider:
    """Implements `base.Provider` from recorded responses."""

    def __init__(self, name: str, path: str | Path, models: Mapping[str, str] | None = None):
        self.name = name
        self.path = Path(path)
        self._aliases = dict(models or {})  # catalog name -> recorded model name
        self._index: ReplayIndex | None = None
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"ReplayProvider(name={self.name!r}, path={str(self.path)!r})"

    async def aclose(self) -> None:
        return None

    async def index(self) -> ReplayIndex:
        if self._index is None:
            async with self._lock:
                if self._index is None:
                    self._index = await anyio.to_thread.run_sync(self._load)
        return self._index

    def load_index(self) -> ReplayIndex:
        """The index, loaded synchronously (for `bmad models` and tests)."""
        if self._index is None:
            self._index = self._load()
        return self._index

    def _load(self) -> ReplayIndex:
        if not self.path.exists():
            raise base.Unavailable(f"replay data {str(self.path)!r} does not exist",
                                   provider=self.name)
        files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in (".csv", ".jsonl")) \
            if self.path.is_dir() else [self.path]
        if not files:
            raise base.Unavailable(f"replay data folder {str(self.path)!r} holds no .csv or .jsonl "
                                   "files", provider=self.name)
        try:
            key = tuple((str(f.resolve()), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
            index = _LOADED.get(key)
            if index is None:
                index = ReplayIndex(rec for f in files for rec in read_recordings(f))
                _LOADED[key] = index
            return index
        except (OSError, ValueError, csv.Error) as exc:
            raise base.Unavailable(f"cannot read replay data: {exc}", provider=self.name) from None

    async def check(self) -> HealthReport:
        """For `bmad doctor`: can the recordings be read, and which models do they hold?"""
        try:
            index = await self.index()
        except base.Unavailable as exc:
            return HealthReport(self.name, "replay", "unavailable", exc.message)
        return HealthReport(self.name, "replay", "ok",
                            f"{index.count} recorded responses in {self.path.name}",
                            models=tuple(sorted(index.models)))

    async def complete(self, request: base.CompletionRequest,
                       on_progress: base.ProgressCallback | None = None) -> base.CompletionResponse:
        index = await self.index()
        prompt = request.prompt_text
        entries = index.lookup(request.metadata.get("prompt_id"), prompt)
        if entries is None:
            where = (f"prompt id {request.metadata['prompt_id']!r}"
                     if request.metadata.get("prompt_id") is not None
                     else f"prompt {normalise_prompt(prompt)[:60]!r}")
            raise base.BadRequest(f"no recorded response for {where} in {self.path.name}",
                                  provider=self.name)
        rec = None
        for candidate in (request.model_id, self._aliases.get(request.model_name),
                          request.model_name):
            if candidate and candidate in entries:
                rec = entries[candidate]
                break
        if rec is None:
            rec = entries.get(None)
        if rec is None:
            raise base.BadRequest(
                f"no recorded response from model {request.model_id!r} for this prompt "
                f"(recorded: {', '.join(sorted(m for m in entries if m))})", provider=self.name)
        estimated = rec.input_tokens is None or rec.output_tokens is None
        input_tokens = rec.input_tokens if rec.input_tokens is not None else max(1, len(prompt) // 4)
        output_tokens = rec.output_tokens if rec.output_tokens is not None \
            else max(1, len(rec.text) // 4)
        if on_progress is not None:
            on_progress(output_tokens)
        raw: dict[str, Any] = {"replayed": True, "prompt_id": rec.prompt_id, "model": rec.model,
                               "source": rec.source, "tokens_estimated": estimated}
        if rec.quality is not None:
            raw["recorded_quality"] = rec.quality
        return base.CompletionResponse(
            text=rec.text, input_tokens=input_tokens, output_tokens=output_tokens,
            latency_s=rec.latency_s or 0.0, cost_usd=rec.cost_usd, finish_reason="stop",
            model_id=rec.model or request.model_id, raw=raw)


# ----------------------------------------------------------------------------------------------
# Reading the two layouts


def read_recordings(path: Path) -> Iterator[Recording]:
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path.name}:{n}: not JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path.name}:{n}: each line must be a JSON object")
                yield from _from_row(row, path.name, n)
        return
    csv.field_size_limit(10**9)  # RouterBench cells can be long
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for n, row in enumerate(reader, 2):
            yield from _from_row(row, path.name, n)


def _from_row(row: Mapping[str, Any], source: str, line: int) -> Iterator[Recording]:
    prompt_id = _first(row, _ID_FIELDS)
    prompt = _unwrap_list_literal(_first(row, ("prompt",)) or "")
    wide = [k for k in row if isinstance(k, str) and k.endswith(_RESPONSE_SUFFIX)]
    if wide:
        for column in wide:
            model = column[: -len(_RESPONSE_SUFFIX)]
            text = row.get(column)
            if text is None or text == "":
                continue  # this model has no record for this prompt
            yield Recording(
                prompt_id=str(prompt_id or ""), prompt=prompt, model=model,
                text=_unwrap_list_literal(str(text)),
                cost_usd=_number(row.get(model + _COST_SUFFIX)),
                input_tokens=None, output_tokens=None, latency_s=None,
                quality=_number(row.get(model)), source=f"{source}:{line}")
        return
    text = _first(row, _TEXT_FIELDS)
    if text is None:
        raise ValueError(f"{source}:{line}: no response field (expected one of "
                         f"{', '.join(_TEXT_FIELDS)} or MODEL|model_response columns)")
    if not prompt_id and not prompt:
        raise ValueError(f"{source}:{line}: a recording needs a prompt_id or a prompt")
    model = _first(row, ("model",))
    yield Recording(
        prompt_id=str(prompt_id or ""), prompt=prompt, model=str(model) if model else None,
        text=text if isinstance(text, str) else json.dumps(text),
        cost_usd=_number(_first(row, _COST_FIELDS)),
        input_tokens=_integer(row.get("input_tokens")),
        output_tokens=_integer(row.get("output_tokens")),
        latency_s=_number(row.get("latency_s")),
        quality=_number(_first(row, ("quality", "correct"))), source=f"{source}:{line}")


def _first(row: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = row.get(name)
        if value is not None and value != "":
            return value
    return None


def _unwrap_list_literal(text: Any) -> str:
    """RouterBench stores prompts and answers as `['...']`: take the (joined) strings inside."""
    if not isinstance(text, str):
        return "" if text is None else str(text)
    stripped = text.strip()
    if len(stripped) >= 4 and stripped[0] == "[" and stripped[-1] == "]" and stripped[1] in "'\"":
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "\n\n".join(value)
    return text


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
