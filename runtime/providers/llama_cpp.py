"""GGUF models run in-process through llama-cpp-python (`kind llama_cpp`, extra `local`).

A model declared with `path "/x/model.gguf"` runs that file; one without a path runs the embedded
default (Gemma 3 270M, see `local_model.py`). Models load on first use and stay loaded.

Prompts: a GGUF that carries a chat template (an instruction-tuned model) gets its messages through
that template (`create_chat_completion`). A base model without one (the embedded Gemma 3 270M) gets
a completion-style prompt, an instruction/response scaffold that such models continue well, with
stop sequences at the scaffold's markers; see docs/providers.md for what it can and can't do.
`returns json` and `returns enum` are enforced by a grammar (llama.cpp's GBNF from the JSON Schema,
or an alternation of the enum values), so even the small model's structured answers parse.

llama objects are not thread-safe: inference runs in a worker thread (anyio.to_thread) under one
lock per model, generating token by token so a cancelled or timed-out call stops within a token.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import anyio
import anyio.from_thread
import anyio.to_thread

from bmad.runtime.providers import base
from bmad.runtime.providers.health import HealthReport
from bmad.runtime.providers.local_model import INSTALL_HINT, ensure_local_model

DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 256
SCAFFOLD_STOPS = ("\n### ", "\n\n\n")


# One worked example: measured on Gemma 3 270M, it turns echoes ("Italy is the capital of Italy")
# into answers ("The capital of Italy is Rome") and one-word stubs into sentences.
SCAFFOLD_EXAMPLE = ("### Instruction:\nWrite a one-line motto for a bakery.\n\n"
                    "### Response:\nFresh bread and warm smiles, every morning.")


def completion_prompt(messages: tuple[base.Message, ...]) -> str:
    """The instruction/response scaffold (with one example) for base models without a chat
    template."""
    parts: list[str] = []
    system = "\n".join(m.content.strip() for m in messages if m.role == "system")
    if system:
        parts.append(system)
    parts.append(SCAFFOLD_EXAMPLE)
    for m in messages:
        if m.role == "user":
            parts.append(f"### Instruction:\n{m.content.strip()}")
        elif m.role == "assistant":
            parts.append(f"### Response:\n{m.content.strip()}")
    parts.append("### Response:\n")
    return "\n\n".join(parts)


def enum_grammar(values: tuple[str, ...]) -> str:
    """GBNF accepting exactly one of `values`."""
    return "root ::= " + " | ".join(json.dumps(v) for v in values)


@dataclass
class _Loaded:
    llm: Any
    path: Path
    chat: bool  # the GGUF carries a chat template
    lock: anyio.Lock


class LlamaCppProvider:
    """Implements `base.Provider` with llama-cpp-python, in this process."""

    kind = "llama_cpp"

    def __init__(self, name: str, model_paths: Mapping[str, str | None] | None = None,
                 cache_dir: Path | None = None, n_ctx: int | None = None,
                 n_threads: int | None = None):
        self.name = name
        self.model_paths = dict(model_paths or {})
        self.cache_dir = cache_dir
        self.n_ctx = n_ctx or int(os.environ.get("BMAD_LLAMA_N_CTX", DEFAULT_N_CTX))
        self.n_threads = n_threads
        self._loaded: dict[Path, _Loaded] = {}
        self._load_lock: anyio.Lock | None = None

    def __repr__(self) -> str:
        return f"LlamaCppProvider(name={self.name!r}, models={sorted(self.model_paths)!r})"

    def resolve_path(self, request: base.CompletionRequest) -> Path:
        for key in (request.model_name, request.model_id):
            if key and self.model_paths.get(key):
                return Path(str(self.model_paths[key]))
        if request.model_id.endswith(".gguf"):
            return Path(request.model_id)
        return ensure_local_model(self.cache_dir)

    async def aclose(self) -> None:
        for loaded in self._loaded.values():
            close = getattr(loaded.llm, "close", None)
            if close is not None:
                close()
        self._loaded.clear()

    async def _model(self, request: base.CompletionRequest) -> _Loaded:
        path = await anyio.to_thread.run_sync(self.resolve_path, request)
        hit = self._loaded.get(path)
        if hit is not None:
            return hit
        if self._load_lock is None:
            self._load_lock = anyio.Lock()
        async with self._load_lock:
            hit = self._loaded.get(path)
            if hit is None:
                llm = await anyio.to_thread.run_sync(self._load, path)
                chat = bool((getattr(llm, "metadata", None) or {}).get("tokenizer.chat_template"))
                hit = self._loaded[path] = _Loaded(llm, path, chat, anyio.Lock())
        return hit

    def _load(self, path: Path) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise base.Unavailable(f"running GGUF models in-process needs llama-cpp-python: "
                                   f"{INSTALL_HINT}", provider=self.name) from None
        if not path.is_file():
            raise base.Unavailable(f"model file {str(path)!r} does not exist", provider=self.name)
        try:
            return Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                         verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise base.Unavailable(f"cannot load {path.name}: {exc}", provider=self.name) from None

    async def complete(self, request: base.CompletionRequest,
                       on_progress: base.ProgressCallback | None = None) -> base.CompletionResponse:
        loaded = await self._model(request)
        started = time.perf_counter()
        try:
            with anyio.fail_after(request.timeout_s) if request.timeout_s else _NoDeadline():
                async with loaded.lock:
                    result = await _run_stoppable(
                        lambda stop, report: self._generate(loaded, request, stop, report),
                        on_progress)
        except TimeoutError:
            raise base.Timeout(f"{self.name}: no complete answer within {request.timeout_s:g}s",
                               provider=self.name) from None
        text, input_tokens, output_tokens, finish = result
        return base.CompletionResponse(
            text=text, input_tokens=input_tokens, output_tokens=output_tokens,
            latency_s=time.perf_counter() - started, cost_usd=0.0, finish_reason=finish,
            model_id=loaded.path.name,
            raw={"model_path": loaded.path.name, "chat_template": loaded.chat})

    def _generate(self, loaded: _Loaded, request: base.CompletionRequest,
                  stop: threading.Event, report: Callable[[int], None]
                  ) -> tuple[str, int, int, str | None]:
        llm = loaded.llm
        kwargs: dict[str, Any] = {"temperature": 0.0 if request.temperature is None
                                  else request.temperature}
        grammar = None
        if request.json_schema is not None or request.enum_values:
            from llama_cpp import LlamaGrammar
            source = enum_grammar(request.enum_values) if request.enum_values and \
                request.json_schema is None else None
            try:
                grammar = LlamaGrammar.from_string(source, verbose=False) if source else \
                    LlamaGrammar.from_json_schema(json.dumps(request.json_schema), verbose=False)
            except (ValueError, RuntimeError) as exc:
                raise base.BadRequest(f"{self.name}: cannot turn the schema into a grammar: {exc}",
                                      provider=self.name) from None
            kwargs["grammar"] = grammar
        if loaded.chat:
            prompt_tokens = len(llm.tokenize(
                "\n".join(m.content for m in request.messages).encode(), add_bos=True))
        else:
            prompt = completion_prompt(request.messages)
            prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=True))
        room = self.n_ctx - prompt_tokens
        if room < 8:
            raise base.ContextTooLong(
                f"{self.name}: the prompt ({prompt_tokens} tokens) does not fit the context "
                f"window ({self.n_ctx})", provider=self.name)
        max_tokens = min(request.max_tokens or DEFAULT_MAX_TOKENS, room)
        stops = list(request.stop)
        if loaded.chat:
            stream = llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in request.messages],
                max_tokens=max_tokens, stop=stops or None, stream=True, **kwargs)
        else:
            if grammar is None:
                stops += [s for s in SCAFFOLD_STOPS if s not in stops]
            stream = llm.create_completion(prompt, max_tokens=max_tokens, stop=stops or None,
                                           stream=True, **kwargs)
        pieces: list[str] = []
        chunks = 0
        finish: str | None = None
        for chunk in stream:
            choice = chunk["choices"][0]
            piece = choice.get("text") if "text" in choice else \
                (choice.get("delta") or {}).get("content")
            if piece:
                pieces.append(piece)
                chunks += 1
                report(chunks)
            finish = choice.get("finish_reason") or finish
            if stop.is_set():
                finish = "cancelled"
                break
        text = "".join(pieces)
        if not loaded.chat:
            text = text.strip()
        output_tokens = max(chunks, len(llm.tokenize(text.encode(), add_bos=False)) if text else 0)
        return text, prompt_tokens, output_tokens, finish

    async def check(self) -> HealthReport:
        """Can the model load here? (Loads the default model: no tokens are generated.)"""
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            return HealthReport(self.name, self.kind, "unavailable",
                                f"llama-cpp-python is not installed: {INSTALL_HINT}")
        paths = sorted({str(p) for p in self.model_paths.values() if p})
        try:
            default = await anyio.to_thread.run_sync(ensure_local_model, self.cache_dir)
        except base.Unavailable as exc:
            if not paths:
                return HealthReport(self.name, self.kind, "unavailable", exc.message)
            default = None
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            return HealthReport(self.name, self.kind, "error",
                                f"model file(s) not found: {', '.join(missing)}")
        models = tuple(Path(p).name for p in paths) + ((default.name,) if default else ())
        return HealthReport(self.name, self.kind, "ok", "llama-cpp-python present; model files "
                            "found", models=models)


class _NoDeadline:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def _run_stoppable(work: Callable[[threading.Event, Callable[[int], None]], Any],
                         on_progress: base.ProgressCallback | None) -> Any:
    """Run `work` in a worker thread; on cancellation ask it to stop and wait until it has."""
    stop = threading.Event()
    finished = threading.Event()

    def report(tokens: int) -> None:
        if on_progress is not None and not stop.is_set():
            try:
                anyio.from_thread.run_sync(on_progress, tokens)
            except RuntimeError:  # the event loop is gone or this task was cancelled
                pass

    def run() -> Any:
        try:
            return work(stop, report)
        finally:
            finished.set()

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        stop.set()
        with anyio.CancelScope(shield=True):
            while not finished.is_set():  # the model must be free before the lock is released
                await anyio.sleep(0.01)
        raise
