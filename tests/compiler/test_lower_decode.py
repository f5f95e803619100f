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


# ----------------------------------------------------------------------------------------------
# Templates: the fast path builds the parts strings.split_template's pieces give

TEMPLATE_PIECES = ["text ", "{{ a }}", "{{b.c}}", "{{", "}}", "{{ }}", "{{ 1x }}", "{", "}", "\n", "  ",
                   "{{ a", "x}}", "{{{ a }}}", "{{\n a \n}}", "{{ a\n}}", "{{\na }}", "{{ a }}\n", "{{ a.b }}"]


def _general_parts(decoded, sm):
    from bmad.compiler import ir

    pieces, _problems = strings.split_template(decoded)
    return [ir.TextPart(p.text or "") if p.ref is None else
            ir.Interpolation(ir.Ref(p.ref, sm.span(p.ref_start, p.ref_end)), sm.span(p.start, p.end))
            for p in pieces]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TEMPLATE_PIECES), max_size=12), st.booleans(), st.integers(0, 50), st.booleans())
def test_plain_template_parts_match_split_template(pieces, long, start, last_line):
    from bmad.compiler.lower import _plain_template_parts
    from bmad.compiler.source_map import SourceMap

    body = "".join(pieces)
    raw = f'"""{body}"""' if long else '"' + body.replace("\n", " ") + '"'
    source = " " * start + raw + ("" if last_line else "\n")  # the file's last line has no newline
    decoded = _decode(raw, start)
    sm = SourceMap("t.bmad", source)
    fast = _plain_template_parts(decoded, sm)
    if decoded.escaped or not decoded.text:
        assert fast is None or fast == _general_parts(decoded, sm)
        return
    _pieces, problems = strings.split_template(decoded)
    if problems:
        assert fast is None  # the general path reports them
    else:
        assert fast == _general_parts(decoded, sm)


def test_plain_template_parts_ask_a_moved_map_for_its_spans():
    """A map whose spans are moved (the incremental compiler's regions) is asked, not bypassed."""
    from bmad.compiler import ir
    from bmad.compiler.lower import _plain_template_parts
    from bmad.compiler.source_map import SourceMap

    class Moved(SourceMap):
        def span(self, start: int, end: int) -> ir.Span:
            s = super().span(start, end)
            return ir.Span(s.file, s.line + 10, s.column, s.end_line + 10, s.end_column, s.start + 99, s.end + 99)

    raw = '"""\n  Review {{ a }} and {{ b.c }}.\n"""'
    source = "x = " + raw + "\n"
    decoded = _decode(raw, 4)
    for sm in (SourceMap("t.bmad", source), Moved("t.bmad", source)):
        assert _plain_template_parts(decoded, sm) == _general_parts(decoded, sm)
