"""Did-you-mean hints: the closest valid name, or a short list of what is valid in that position."""

from __future__ import annotations

import difflib
from typing import Iterable

# Listing more than this many names makes a hint harder to read than the source.
MAX_LISTED = 8


def closest(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def list_names(candidates: Iterable[str]) -> str:
    names = sorted(set(candidates))
    shown = ", ".join(f"`{n}`" for n in names[:MAX_LISTED])
    if len(names) > MAX_LISTED:
        shown += f" and {len(names) - MAX_LISTED} more"
    return shown


def did_you_mean(name: str, candidates: Iterable[str], what: str) -> str:
    """`did you mean `summary`?`, else the list of valid names (`what` names their kind), else advice."""
    candidates = [c for c in candidates if c != name]
    best = closest(name, candidates)
    if best is not None:
        return f"did you mean `{best}`?"
    if candidates:
        return f"known {what}: {list_names(candidates)}"
    return f"there are no {what} here yet"


def and_then(first: str, second: str) -> str:
    """Two hint sentences as one: `did you mean `x`? Or declare it: ...`."""
    first = first.rstrip()
    if not first.endswith(("?", ".")):
        first += "."
    return f"{first} {second[:1].upper()}{second[1:]}"
