"""Hostile-input strategies for the front ends, built on the other suites' ones (not copies):
grammar-shaped programs (tests/compiler/test_format.py `programs`), the contract files mutated
token-wise (tests/compiler/test_parse.py `_mutate`), the seed YAML with the YAML alphabet
(tests/compiler/test_yaml_frontend.py), plus what they lack: runaway nesting at any point, huge
repeats, and alias bombs."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.compiler.test_format import programs
from tests.compiler.test_parse import SPEC_TEXTS, _mutate
from tests.compiler.test_yaml_frontend import SEED, yaml_alphabet

OPENERS = ["(", "[", "{", '{"a":', "not ", "- ", "[[", "{{ "]


@st.composite
def deep_nesting(draw, text: str) -> str:
    """`text` with a run of one opener (and maybe its closers) spliced in somewhere, up to 500 deep."""
    at = draw(st.integers(0, len(text)))
    opener = draw(st.sampled_from(OPENERS))
    depth = draw(st.integers(1, 500))
    closers = {"(": ")", "[": "]", "{": "}", '{"a":': "1}", "[[": "]]"}.get(opener, "")
    tail = closers * depth if draw(st.booleans()) else ""
    return text[:at] + opener * depth + tail + text[at:]


@st.composite
def hostile_bmad(draw) -> str:
    """A grammar-shaped program or a contract file, mutated, sometimes with runaway nesting."""
    if draw(st.booleans()):
        text = draw(programs())
    else:
        text = SPEC_TEXTS[draw(st.integers(0, len(SPEC_TEXTS) - 1))]
    text = _mutate(text, draw(st.integers(0, 2**32)), draw(st.integers(0, 6)))
    if draw(st.booleans()):
        text = draw(deep_nesting(text))
    return text


@st.composite
def hostile_yaml(draw) -> str:
    text = SEED.read_text()
    at = draw(st.integers(0, len(text)))
    insert = draw(st.text(yaml_alphabet, max_size=8))
    text = text[:at] + insert + text[at + draw(st.integers(0, 8)):]
    choice = draw(st.integers(0, 3))
    if choice == 1:
        text = draw(deep_nesting(text))
    elif choice == 2:  # an alias bomb appended to a task
        text += "\n    inputs:\n      a: &a [x, x, x, x, x, x, x, x]\n      b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n" \
                "      c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n      d: [*c, *c, *c, *c, *c, *c, *c, *c]\n"
    elif choice == 3:  # block nesting by indentation
        depth = draw(st.integers(1, 400))
        text += "\n" + "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v\n"
    return text
