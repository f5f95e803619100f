"""Which characters a terminal would act on, and how to show them as inert text instead.

The one definition shared by everything that prints text from users' files or models: the
diagnostics renderer (`compiler/diagnostics.py`: quoted source lines, messages, hints) and the run
reports (`runtime/report_text.py`). It lives in the compiler package because the compiler never
imports the runtime, while the runtime imports the compiler.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the bidi
# embeddings, overrides and isolates that can make a line read other than it is.
UNSAFE_RANGES = ((0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F), (0x202A, 0x202E), (0x2066, 0x2069))
UNSAFE = re.compile("[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in UNSAFE_RANGES) + "]")
# For `str.translate` on JSON text: json escapes C0 itself; the rest become \u escapes (the same
# string to a JSON reader, inert on a terminal).
JSON_UNSAFE = {c: f"\\u{c:04x}" for a, b in UNSAFE_RANGES if a >= 0x7F for c in range(a, b + 1)}


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """`text` with nothing a terminal would act on: each control character (ESC, BEL, CR, C1,
    bidi overrides) is shown as `\\x1b`-style text instead. Tabs and newlines stay."""
    return UNSAFE.sub(_visible, text) if UNSAFE.search(text) else text


__all__ = ["JSON_UNSAFE", "UNSAFE", "UNSAFE_RANGES", "terminal_safe"]
