"""Semantic tokens: keywords, strings, numbers, comments, and names coloured by what they name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from bmad.lsp.documents import Document
from bmad.lsp.keywords import ALL_WORDS, EXPRESSION_WORDS, TYPES

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer

TOKEN_TYPES = ["keyword", "string", "number", "comment", "function", "class", "namespace",
               "variable", "parameter", "property", "type", "operator", "enumMember"]
TOKEN_MODIFIERS = ["declaration", "readonly"]
LEGEND = types.SemanticTokensLegend(token_types=TOKEN_TYPES, token_modifiers=TOKEN_MODIFIERS)

_TYPE = {name: i for i, name in enumerate(TOKEN_TYPES)}
_DECL = 1  # bit of "declaration"
# What each symbol / reference kind is shown as.
_KIND_TYPE = {"task": "function", "model": "class", "provider": "namespace", "workflow": "namespace",
              "input": "variable", "loop": "parameter", "capability": "property", "argument": "parameter",
              "rubric": "enumMember"}


def classify(doc: Document) -> list[tuple[int, int, str, int]]:
    """(start, end, token type, modifier bits) for every token worth colouring, in text order."""
    index = doc.index
    named: dict[int, tuple[int, str, int]] = {}
    for sym in index.symbols:
        named[sym.start] = (sym.end, _KIND_TYPE.get(sym.kind, "variable"), _DECL)
    for ref in index.references:
        kind = ref.kind
        if kind == "value":
            target = index.resolve_local(ref)
            kind = target.kind if target is not None else "input"
        named[ref.start] = (ref.end, _KIND_TYPE.get(kind, "variable"), 0)
    out: list[tuple[int, int, str, int]] = []
    for tok in index.tokens:
        if tok.kind == "comment":
            out.append((tok.start, tok.end, "comment", 0))
        elif tok.is_string:
            # split the string around its `{{ ref }}` so the refs get their own colour
            pos = tok.start
            for it in tok.interpolations:
                out.append((pos, it.ref_start, "string", 0))
                root_end = it.ref_start + len(it.ref.split(".")[0]) if it.ref else it.ref_start
                hit = named.get(it.ref_start)
                if hit is not None and it.ref:
                    out.append((it.ref_start, root_end, hit[1], hit[2]))
                    pos = root_end
                else:
                    pos = it.ref_start
            out.append((pos, tok.end, "string", 0))
        elif tok.kind == "number":
            out.append((tok.start, tok.end, "number", 0))
        elif tok.kind == "name":
            hit = named.get(tok.start)
            if hit is not None:
                out.append((tok.start, hit[0], hit[1], hit[2]))
            elif tok.text in TYPES:
                out.append((tok.start, tok.end, "type", 0))
            elif tok.text in EXPRESSION_WORDS or tok.text in ALL_WORDS:
                out.append((tok.start, tok.end, "keyword", 0))
        elif tok.kind == "op" and tok.text in (">=", "<=", "==", "!=", "<", ">"):
            out.append((tok.start, tok.end, "operator", 0))
    return [t for t in out if t[1] > t[0]]


def full(ls: "BmadLanguageServer", doc: Document) -> types.SemanticTokens:
    lines = doc.lines(ls.encoding)
    data: list[int] = []
    prev_line = prev_char = 0
    for start, end, kind, mods in classify(doc):
        # LSP tokens may not span lines: split multi-line strings (""" blocks) per line.
        s = lines.position(start)
        e = lines.position(end)
        pieces = []
        if s.line == e.line:
            pieces.append((s.line, s.character, e.character - s.character))
        else:
            pieces.append((s.line, s.character, lines.line_length(s.line) - s.character))
            for ln in range(s.line + 1, e.line):
                pieces.append((ln, 0, lines.line_length(ln)))
            pieces.append((e.line, 0, e.character))
        for line, char, length in pieces:
            if length <= 0:
                continue
            delta_line = line - prev_line
            delta_char = char - prev_char if delta_line == 0 else char
            data += [delta_line, delta_char, length, _TYPE[kind], mods]
            prev_line, prev_char = line, char
    return types.SemanticTokens(data=data)
