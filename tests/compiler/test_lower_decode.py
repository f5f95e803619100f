"""lower.py's fast path for triple-quoted strings without escapes gives what strings.decode gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bmad.compiler import strings
from bmad.compiler.lower import _decode, _dedent_plain_block

PIECES = [" ", "  ", "\t", "\n", " \n", "\n  ", "\n\t", "a", "word", "{{ x }}", "{", "}", "é", "\f"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=25), st.integers(0, 1000))
def test_plain_block_decodes_as_strings_decode(pieces, start):
    raw = '"""' + "".join(pieces) + '"""'
    assert _dedent_plain_block(raw, start) == strings.decode(raw, start)
    assert _decode(raw, start) == strings.decode(raw, start)


def test_other_strings_go_to_strings_decode():
    for raw in ['"plain"', '""', '"""\n  a\\n b\n"""', '"""x"', '"with \\" escape"']:
        assert _decode(raw, 7) == strings.decode(raw, 7)


def test_typical_prompt():
    raw = '"""\n      Review {{ a }}.\n\n      Be concrete.\n    """'
    decoded = _decode(raw, 40)
    assert decoded.text == "Review {{ a }}.\n\nBe concrete."
    assert decoded == strings.decode(raw, 40)
