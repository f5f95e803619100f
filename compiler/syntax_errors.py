"""Syntax errors in plain words, and how the parser recovers from them.

Lark reports an unexpected token or character together with the parser state. We explain it in
three ways, most specific first: context we track ourselves (which block a missing `}` should
close, an unterminated string, a unit written apart from its number), then a table of known-bad
inputs matched with Lark's `UnexpectedInput.match_examples` (the same parser state means the same
mistake), then a generic "unexpected X; expected Y" built from what the parser would accept.
Codes BMAD-E001..E009 and E030..E049 live here; lowering owns E010..E029.
"""

from __future__ import annotations

import difflib
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import cache

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from bmad.compiler.diagnostics import Diagnostic, Related, error
from bmad.compiler.ir import Span
from bmad.compiler.source_map import SourceMap


@dataclass(frozen=True)
class Explanation:
    code: str
    message: str  # may use {token}: the offending text
    hint: str | None = None
    # When something is missing at the end of a line, the parser only notices at the next line's
    # first word; the diagnostic then points back at the word that lacks its value and says this
    # instead (may use {previous}: that word). None: keep pointing at the token, with `message`.
    after: str | None = None


# Known mistakes, each with small inputs that make the parser fail in the same state.
EXAMPLES: list[tuple[Explanation, list[str]]] = [
    (Explanation("BMAD-E030", "`{token}` is not a task clause",
                 "task clauses include prompt, system, depends, needs, model, route, returns, quality, consensus"),
     ['workflow w { task a { promt "x" } }', 'workflow w { task a { prompt "x" temprature 1 } }']),
    (Explanation("BMAD-E031", "`{token}` is not a workflow clause",
                 "a workflow holds about, strategy, optimize, budget, quality, input, task, parallel and output"),
     ["workflow w { tsk a { } }", 'workflow w { about "x" outptu a }']),
    (Explanation("BMAD-E032", "`{token}` is not a model clause",
                 "a model holds provider, id, price, context, skills, latency, path and aliases"),
     ["model m { prise }", "model m { provider p prise }"]),
    (Explanation("BMAD-E033", "`{token}` is not a provider clause",
                 "a provider holds kind, base_url, api_key env VAR, limits, data and timeout"),
     ["provider p { knd openai }", "provider p { kind openai bse_url }"]),
    (Explanation("BMAD-E034", "expected a declaration, found `{token}`",
                 "a file holds `import \"file.bmad\"`, `use std.NAME`, `provider`, `model`, `rubric` and `workflow` declarations"),
     ["wrkflow w { }", "workflow w { } tsk", "task a { }"]),
    (Explanation("BMAD-E035", "this declaration needs a name",
                 "write e.g. `workflow review { ... }`, `task summarize { ... }`",
                 after="this declaration needs a name"),
     ["workflow { }", "workflow w { task { } }", "provider { }", "model { }",
     "workflow w { task for }"]),
    (Explanation("BMAD-E036", "expected `{{` to open the body, found `{token}`",
                 "a declaration's clauses go between braces: `workflow w { ... }`",
                 after="expected `{{` after `{previous}` to open the body"),
     ["workflow w task", "provider p kind", "model m provider", "workflow w { task a prompt }",
      "workflow w { parallel task }"]),
    (Explanation("BMAD-E036", "expected `{{` after `{previous}`, found `{token}`",
                 "write e.g. `limits { rpm 500, tpm 200k }` or `skills { code 0.9, reasoning 0.8 }`",
                 after="expected `{{` after `{previous}`"),
     ["provider p { limits rpm }", "model m { skills code }"]),
    (Explanation("BMAD-E037", "an input needs a type",
                 "write `input NAME: TYPE`, where TYPE is text, number, bool, json or list<T>",
                 after="an input needs a type"),
     ["workflow w { input x }", "workflow w { input x: }", "workflow w { input x task }"]),
    (Explanation("BMAD-E038", "expected a string here, found `{token}`",
                 'text goes in quotes: `prompt "..."`, or `"""..."""` for several lines',
                 after="expected a string after `{previous}`"),
     ['workflow w { task a { prompt x } }', 'workflow w { task a { prompt } }',
      'workflow w { task a { system x } }', 'workflow w { about x }', 'import x',
      'provider p { base_url x }', 'model m { id x }']),
    (Explanation("BMAD-E039", "`api_key` names an environment variable",
                 "write `api_key env OPENAI_API_KEY`; keys never go in .bmad files",
                 after="`api_key` names an environment variable"),
     ["provider p { api_key OPENAI_API_KEY }", "provider p { api_key env }"]),
    (Explanation("BMAD-E040", "a quality floor is written `quality >= X`",
                 "e.g. `quality >= 0.8 judged by gpt-4o else refine max 2`",
                 after="a quality floor is written `quality >= X`"),
     ["workflow w { task a { quality 0.8 } }", "workflow w { quality 0.8 }",
      "workflow w { task a { quality > 0.8 } }"]),
    (Explanation("BMAD-E041", "a price is written `price input $X output $Y per 1M`",
                 "prices are USD per million tokens, e.g. `price input $2.50 output $10.00 per 1M`",
                 after="a price is written `price input $X output $Y per 1M`"),
     ["model m { price $1 }", "model m { price input $1 $2 }", "model m { price input $1 output $2 }"]),
    (Explanation("BMAD-E042", "after `=` a task calls a workflow, found `{token}`",
                 "write `task t = WORKFLOW(arg: value)`; to compare in `when`, use `==`"),
     ["workflow w { task a when x = 1 { } }", "workflow w { task a = 1 }"]),
    (Explanation("BMAD-E043", "`use` names a standard-library module",
                 "write e.g. `use std.code_review`; to load your own file write `import \"file.bmad\"`"),
     ["use models workflow", "use 1"]),
    (Explanation("BMAD-E044", "expected a list of models, found `{token}`",
                 "write e.g. `among [gpt-4o, claude-sonnet]` or `among 3 models`",
                 after="expected a list of models after `{previous}`"),
     ["workflow w { task a { consensus vote among } }", "workflow w { task a { fallback gpt-4o } }",
      "workflow w { task a { peer_review among } }", "workflow w { task a { consensus vote among 3 } }"]),
    (Explanation("BMAD-E045", "a consensus clause names its method and participants",
                 "write `consensus vote among [a, b, c] quorum 2`, `consensus judge M among [a, b]` "
                 "or `consensus ensemble by M among [a, b]`",
                 after="a consensus clause names its method and participants"),
     ["workflow w { task a { consensus [a, b] } }", "workflow w { task a { consensus vote [a] } }",
      "workflow w { task a { consensus judge among } }", "workflow w { task a { consensus ensemble among } }"]),
    (Explanation("BMAD-E046", "`returns` takes `text`, `json {schema}` or `enum(A, B)`",
                 'e.g. `returns json { "type": "object" }` or `returns enum(APPROVE, REJECT)`',
                 after="`returns` takes `text`, `json {schema}` or `enum(A, B)`"),
     ["workflow w { task a { returns number } }", "workflow w { task a { returns } }"]),
    (Explanation("BMAD-E047", "this is not valid JSON: expected a quoted key, found `{token}`",
                 'JSON keys are double-quoted strings: `{ "type": "object" }`; JSON allows no trailing comma'),
     ['workflow w { task a { returns json { type: 1 } } }',
      'workflow w { task a { returns json { "a": 1, } } }']),
    (Explanation("BMAD-E048", "this is not valid JSON: found `{token}`",
                 'write JSON: `{ "key": value }` with values like "text", 1, true, null, [..] or {..}'),
     ['workflow w { task a { returns json { "a" 1 } } }', 'workflow w { task a { returns json { "a": } } }',
      'workflow w { task a { returns json { "a": x } } }', 'workflow w { task a { returns json { "a": [1 2] } } }',
      'workflow w { task a { returns json { "a": 1 "b": 2 } } }']),
    (Explanation("BMAD-E049", "expected a value here, found `{token}`",
                 "a condition compares names, strings, numbers, true/false and lists: `when score >= 7 and kind == \"bug\"`",
                 after="expected a value after `{previous}`"),
     ["workflow w { task a when } }", "workflow w { task a when x == } }",
      "workflow w { task a when x and } }", "workflow w { task a for each x in } }"]),
    (Explanation("BMAD-E049", "expected a default value after `=`, found `{token}`",
                 'write a value, e.g. `input tone: text = "friendly"`, or drop the `=` to make the input required',
                 after="expected a default value after `=`"),
     ["workflow w { input x: text = }", "workflow w { input x: list<text> = }"]),
    (Explanation("BMAD-E009", "expected a number here, found `{token}`",
                 "e.g. `max_tokens 400`, `temperature 0.2`, `timeout 30s`, `retry 3`, `context 128k`",
                 after="expected a number after `{previous}`"),
     ["workflow w { task a { max_tokens } }", "workflow w { task a { temperature x } }",
      "workflow w { task a { timeout } }", "workflow w { task a { retry } }", "model m { context }",
      "workflow w { task a { best_of } }", "model m { skills { code } }", "provider p { limits { rpm } }",
      "workflow w { task a { reduce b in chunks of } }", "workflow w { task a { peer_review among [a] rounds } }",
      "workflow w { task a { consensus vote among [a] quorum } }", "workflow w { task a { quality >= 1 else retry } }",
      "workflow w { task a { quality >= 1 else refine max } }", "model m { latency 1ms + } }"]),
    (Explanation("BMAD-E009", "expected a number after `quality >=`, found `{token}`",
                 "a quality floor is a score from 0 to 1, e.g. `quality >= 0.8 judged by gpt-4o`",
                 after="expected a number after `quality >=`"),
     ["workflow w { task a { quality >= } }", "workflow w { quality >= }"]),
    (Explanation("BMAD-E009", "`budget` needs an amount, found `{token}`",
                 "e.g. `budget $2.00 per run`, `budget 400k tokens` or `budget 10m`",
                 after="`budget` needs an amount"),
     ["workflow w { budget }", "workflow w { task a { budget } }"]),
    (Explanation("BMAD-E004", "expected `in` after `for each {previous}`, found `{token}`",
                 "write `for each ITEM in LIST`, e.g. `task summarize for each doc in docs { ... }`",
                 after="expected `in` after `for each {previous}`"),
     ["workflow w { task a for each x xs }", "workflow w { task a for each x }"]),
    (Explanation("BMAD-E004", "expected `:` after the argument's name, found `{token}`",
                 "arguments are written `name: value`, e.g. `task r = review(code: diff, strict: true)`",
                 after="expected `:` after `{previous}`"),
     ['workflow w { task a = f(x "y") }', "workflow w { task a = f(x) }"]),
]

_TOKEN_WORDS = {
    "NAME": "a name", "MODEL_ID": "a model name", "STRING": "a string", "LONG_STRING": 'a `"""` block',
    "QUANTITY": "a number", "MONEY": "an amount like `$0.50`", "JSON_NUMBER": "a number",
    "COMPARE": "a comparison (`==`, `>=`, ...)", "$END": "the end of the file",
}


@cache
def _terminal_words() -> dict[str, str]:
    from bmad.compiler.parse import build_parser

    words = dict(_TOKEN_WORDS)
    for terminal in build_parser().terminals:
        if terminal.name not in words and terminal.pattern.type == "str":
            words[terminal.name] = f"`{terminal.pattern.value}`"
    return words


@cache
def _example_error(example: str) -> UnexpectedInput | None:
    from bmad.compiler import parse

    session = getattr(parse._local, "session", None)
    parse._local.session = None  # the examples must not touch the user's parse state
    try:
        parse.build_parser().parse(example)
    except UnexpectedInput as e:
        return e
    finally:
        parse._local.session = session
    return None


def _position(e: UnexpectedInput):
    state = getattr(e, "state", None)
    return getattr(state, "position", state)  # Lark passes the parser state object; we want its number


def _match_known_mistake(e: UnexpectedInput) -> Explanation | None:
    """`UnexpectedInput.match_examples`, keyed on the LALR state number alone.

    Lark's own comparison also wants the same stack depth, so a mistake deep inside a file would
    never match the short examples; the state number and the acceptable tokens are what matter.
    """
    position = _position(e)
    if position is None:
        return None
    token = getattr(e, "token", None)
    by_type: Explanation | None = None
    by_state: Explanation | None = None
    for explanation, examples in EXAMPLES:
        for example in examples:
            known = _example_error(example)
            if known is None or _position(known) != position:
                continue
            if isinstance(e, UnexpectedToken) and isinstance(known, UnexpectedToken):
                if known.accepts != e.accepts:
                    continue
                if known.token == token:
                    return explanation
                if known.token.type == token.type and by_type is None:
                    by_type = explanation
            if by_state is None:
                by_state = explanation
    return by_type or by_state


# ----------------------------------------------------------------------------------------------
# Open blocks, tracked from the text so we can name the block a missing `}` belongs to

_SCAN = re.compile(
    r'(?P<comment>#[^\n]*)|(?P<long>"""(?:[^"\\]|\\.|"(?!""))*(?:"""|$))|(?P<str>"(?:[^"\\\n]|\\.)*"?)'
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)|(?P<open>\{)|(?P<close>\})|(?P<other>\S)",
    re.S,
)
_HEADERS = ("task", "workflow", "provider", "model", "parallel", "limits", "skills", "json")


@dataclass(frozen=True)
class OpenBlock:
    kind: str  # task, workflow, provider, model, parallel, limits, skills, json, block
    name: str | None
    start: int


class _BlockScan:
    """The scan behind `open_blocks`, kept between calls: the parser meets its errors in file
    order, so each call only reads on from where the last one stopped (a file with thousands of
    errors is scanned once, not once per error)."""

    def __init__(self, text: str):
        self.text = text
        self.matches = _SCAN.finditer(text)
        self.pending = None
        self.offset = 0
        self.stack: list[OpenBlock] = []
        self.words: list[tuple[str, int]] = []  # words since the last brace

    def advance(self, upto: int) -> list[OpenBlock]:
        stack, words = self.stack, self.words
        while True:
            m = self.pending if self.pending is not None else next(self.matches, None)
            if m is None or m.end() > upto:
                self.pending = m
                break
            self.pending = None
            kind = m.lastgroup
            if kind == "word":
                words.append((m.group(), m.start()))
            elif kind == "open":
                block = OpenBlock("block", None, m.start())
                for i in range(len(words) - 1, -1, -1):
                    word, start = words[i]
                    if word in _HEADERS and not (word == "model" and stack and stack[-1].kind == "task"):
                        name = words[i + 1][0] if i + 1 < len(words) and word not in ("parallel", "limits", "skills", "json") else None
                        block = OpenBlock(word, name, start)
                        break
                if stack and stack[-1].kind == "json":
                    block = OpenBlock("json", None, m.start())
                stack.append(block)
                words.clear()
            elif kind == "close":
                if stack:
                    stack.pop()
                words.clear()
        self.offset = upto
        return list(stack)


_scans = threading.local()


def open_blocks(text: str, upto: int) -> list[OpenBlock]:
    """The blocks opened with `{` and not yet closed before offset `upto`, outermost first."""
    scan = getattr(_scans, "scan", None)
    if scan is None or scan.text is not text or upto < scan.offset:
        scan = _scans.scan = _BlockScan(text)
    return scan.advance(upto)


def _open_braces(text: str, upto: int) -> list[int]:
    """The offsets of the `{` not yet closed before offset `upto`, outermost first."""
    stack: list[int] = []
    for m in _SCAN.finditer(text, 0, upto):
        if m.lastgroup == "open":
            stack.append(m.start())
        elif m.lastgroup == "close" and stack:
            stack.pop()
    return stack


def _describe_block(block: OpenBlock, source_map: SourceMap) -> str:
    line, column = source_map.position(block.start)
    if block.kind == "json":
        what = "the JSON object"
    elif block.kind in ("parallel", "limits", "skills"):
        what = f"the `{block.kind}` block"
    elif block.kind == "block":
        what = "the block"
    else:
        what = f"{block.kind} `{block.name}`" if block.name else f"the {block.kind}"
    return f"{what} opened at {line}:{column}"


# ----------------------------------------------------------------------------------------------
# Keywords, and which of them start a clause in each kind of block (read off the parser itself,
# so the lists follow the grammar)

_BLOCK_PREFIXES = {
    "file": "",
    "workflow": "workflow w {",
    "parallel": "workflow w { parallel {",
    "task": "workflow w { task t {",
    "model": "model m {",
    "provider": "provider p {",
}
_BLOCK_NESTING = {"file": None, "workflow": "file", "parallel": "workflow", "task": "workflow",
                  "model": "file", "provider": "file"}
_DECLARATION_KEYWORDS = ("import", "use", "provider", "model", "workflow")


@cache
def keyword_terminals() -> dict[str, str]:
    """Keyword text -> its terminal's name (`task` -> `TASK`)."""
    from bmad.compiler.parse import build_parser

    return {t.pattern.value: t.name for t in build_parser().terminals
            if t.pattern.type == "str" and t.pattern.value.isidentifier()}


@cache
def clause_keywords(kind: str) -> frozenset[str]:
    """The keywords that may start a clause directly in a block of this kind (`file`: declarations)."""
    from bmad.compiler import parse

    session = getattr(parse._local, "session", None)
    parse._local.session = None  # must not touch the user's parse state
    try:
        ip = parse.build_parser().parse_interactive(_BLOCK_PREFIXES[kind])
        ip.exhaust_lexer()
        accepts = ip.accepts()
    finally:
        parse._local.session = session
    return frozenset(word for word, name in keyword_terminals().items() if name in accepts)


def _all_clause_keywords() -> frozenset[str]:
    return frozenset().union(*(clause_keywords(kind) for kind in _BLOCK_PREFIXES))


def _block_kind(block: OpenBlock | None) -> str | None:
    if block is None:
        return "file"
    return block.kind if block.kind in _BLOCK_PREFIXES else None


def _starts_line(text: str, offset: int) -> bool:
    line_start = text.rfind("\n", 0, offset) + 1
    return not text[line_start:offset].strip()


def _indent_of_line(text: str, offset: int) -> int:
    line_start = text.rfind("\n", 0, offset) + 1
    line = text[line_start:offset + 1]
    return len(line) - len(line.lstrip())


def _where(block: OpenBlock | None) -> str:
    """`task `summarize``, `the `parallel` block`, ... for hints."""
    if block is None:
        return "the file"
    if block.kind in ("parallel", "limits", "skills"):
        return f"the `{block.kind}` block"
    return f"{block.kind} `{block.name}`" if block.name else f"the {block.kind}"


_CLAUSE_HINTS = {
    "task": "task clauses include prompt, system, depends, needs, model, route, returns, quality, consensus",
    "workflow": "a workflow holds about, strategy, optimize, budget, quality, input, task, parallel and output",
    "parallel": "a `parallel` block holds only tasks: `parallel { task a { ... } task b { ... } }`",
    "model": "a model holds provider, id, price, context, skills, latency, path and aliases",
    "provider": "a provider holds kind, base_url, api_key env VAR, limits, data and timeout",
    "file": "a file holds `import \"file.bmad\"`, `use std.NAME`, `provider`, `model`, `rubric` and `workflow` declarations",
}
_CLAUSE_CODES = {"task": "BMAD-E030", "workflow": "BMAD-E031", "parallel": "BMAD-E031", "model": "BMAD-E032",
                 "provider": "BMAD-E033", "file": "BMAD-E034"}
_HOMES = {"workflow": "directly in a workflow", "task": "in a task", "file": "at the top level of the file",
          "parallel": "in a `parallel` block", "model": "in a model", "provider": "in a provider"}


def _not_a_clause(kind: str, word: str, span: Span, hint: str | None) -> Diagnostic:
    if kind == "file":
        message = f"expected a declaration, found `{word}`"
    elif kind == "parallel":
        message = f"`{word}` can't go in a `parallel` block"
    else:
        message = f"`{word}` is not a {kind} clause"
    return error(_CLAUSE_CODES[kind], span, message, hint or _CLAUSE_HINTS[kind])


def _keyword_suggestion(word: str, candidates) -> str | None:
    match = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return match[0] if match else None


def _word_block_kind(token, text: str) -> str | None:
    """The kind of block a bare word (NAME or MODEL_ID token) stands in; None for any other token or
    a word outside the blocks that have clauses."""
    if token.type not in ("NAME", "MODEL_ID") or token.start_pos is None:
        return None
    blocks = open_blocks(text, token.start_pos)
    return _block_kind(blocks[-1] if blocks else None)


def _clause_slot(token, expected: set[str], text: str) -> tuple[str, set[str]] | None:
    """(block kind, keywords the parser would take) when the token is a word standing where a clause
    of its block may start; None otherwise."""
    kind = _word_block_kind(token, text)
    if kind is None:
        return None
    words = {word for word, name in keyword_terminals().items() if name in expected}
    if not words & clause_keywords(kind):
        return None  # not where a clause starts
    return kind, words


def _misspelt_keyword(e: UnexpectedToken, expected: set[str], text: str, span: Span) -> Diagnostic | None:
    """A word where a clause may start: a misspelt keyword (`outptu`, `promt`, `wrkflow`) gets the
    enclosing block's code and a did-you-mean from the words that may come there."""
    token = e.token
    slot = _clause_slot(token, expected, text)
    if slot is None:
        return None
    kind, words = slot
    previous = _previous_extent(e)
    if "COMMA" in expected and previous is not None and not _on_a_later_line(e, text, previous):
        return None  # `depends draft review`: a list missing its comma, not a misspelt clause
    match = _keyword_suggestion(str(token), words)
    if match is None:
        return None
    if match in clause_keywords(kind):
        return _not_a_clause(kind, _token_text(token), span, f"did you mean `{match}`?")
    return error("BMAD-E004", span, f"unexpected `{_token_text(token)}`", f"did you mean `{match}`?")


def _unknown_clause(e: UnexpectedToken, expected: set[str], text: str, span: Span,
                    source_map: SourceMap) -> Diagnostic | None:
    """A word where a clause may start that is no keyword at all: list the block's clauses."""
    token = e.token
    slot = _clause_slot(token, expected, text)
    if slot is None:
        return None
    kind, _words = slot
    return _not_a_clause(kind, _token_text(token), span, None)


def _wrong_level(e: UnexpectedToken, text: str) -> tuple[str, OpenBlock, str] | None:
    """A clause written inside a block it doesn't belong to (`input` inside a task, `model` inside
    a workflow): (keyword, the block it is in, the kind of block it belongs to).

    Told apart from a missing `}` by indentation: a keyword indented deeper than the line that
    opened the block (or on that same line) was meant to be inside it.
    """
    cached = getattr(e, "_bmad_wrong_level", "unset")
    if cached != "unset":
        return cached
    result = None
    token = e.token
    word = str(token)
    if token.type != "$END" and token.start_pos is not None and keyword_terminals().get(word) == token.type:
        blocks = open_blocks(text, token.start_pos)
        kind = _block_kind(blocks[-1] if blocks else None)
        if blocks and kind is not None and word not in clause_keywords(kind):
            block = blocks[-1]
            inside = (not _starts_line(text, token.start_pos)
                      or text.find("\n", block.start, token.start_pos) == -1
                      or _indent_of_line(text, token.start_pos) > _indent_of_line(text, block.start))
            if inside:
                home = None
                outer = _BLOCK_NESTING.get(kind)
                while outer is not None:
                    if word in clause_keywords(outer):
                        home = outer
                        break
                    outer = _BLOCK_NESTING.get(outer)
                if home is not None and not (word == "task" and kind == "task"):
                    result = (word, block, home)
    e._bmad_wrong_level = result  # type: ignore[attr-defined]
    return result


def _describe_wrong_level(found: tuple[str, OpenBlock, str], span: Span, source_map: SourceMap) -> Diagnostic:
    word, block, home = found
    kind = _block_kind(block)
    diag = _not_a_clause(kind, word, span, f"`{word}` goes {_HOMES[home]}: move it out of {_where(block)}")
    opened = source_map.span(block.start, block.start + len(block.kind))
    return Diagnostic(diag.code, diag.severity, diag.span, diag.message, diag.hint,
                      (Related(opened, f"{_where(block)} starts here"),))


def _last_closed_block(text: str, upto: int) -> tuple[OpenBlock, int] | None:
    """The block closed by the last `}` before `upto` (with that `}`'s offset)."""
    stack: list[OpenBlock] = []
    last = None
    words: list[tuple[str, int]] = []
    for m in _SCAN.finditer(text, 0, upto):
        kind = m.lastgroup
        if kind == "word":
            words.append((m.group(), m.start()))
        elif kind == "open":
            block = OpenBlock("block", None, m.start())
            for i in range(len(words) - 1, -1, -1):
                word, start = words[i]
                if word in _HEADERS:
                    name = words[i + 1][0] if i + 1 < len(words) and word not in ("parallel", "limits", "skills", "json") else None
                    block = OpenBlock(word, name, start)
                    break
            stack.append(block)
            words = []
        elif kind == "close":
            if stack:
                last = (stack.pop(), m.start())
            words = []
    return last


def _clause_after_closed_block(e: UnexpectedToken, text: str, span: Span, source_map: SourceMap) -> Diagnostic | None:
    """`output x` at the top of the file right after a block's `}`: a `}` too many closed it."""
    token = e.token
    word = str(token)
    if token.type == "$END" or keyword_terminals().get(word) != token.type or word in clause_keywords("file"):
        return None
    if open_blocks(text, token.start_pos):
        return None
    closed = _last_closed_block(text, token.start_pos)
    if closed is None or closed[0].kind not in ("workflow", "model", "provider"):
        return None
    block, brace = closed
    if word not in clause_keywords(block.kind) and not (block.kind == "workflow" and word in clause_keywords("task")):
        return None
    line, column = source_map.position(brace)
    return error("BMAD-E004", span, f"`{word}` comes after the end of {_where(block)}",
                 f"the `}}` at {line}:{column} closed {_where(block)}; if it is one too many, remove it",
                 [Related(source_map.span(brace, brace + 1), f"{_where(block)} ends here")])


# ----------------------------------------------------------------------------------------------
# A keyword read as a name: `input tone: text =` (default missing) then `task a { ... }` on the
# next line. Where a name may come, the contextual lexer reads `task` as a name, so the parser
# trips a word later. Seen from the keyword's own line, the mistake is the unfinished clause above.


def _keyword_read_as_name(e: UnexpectedInput, text: str) -> Token | None:
    """The name just read, if it is a clause keyword that starts its line and the error follows it
    on that line."""
    cached = getattr(e, "_bmad_keyword_as_name", "unset")
    if cached != "unset":
        return cached
    result = None
    ip = getattr(e, "interactive_parser", None)
    token = getattr(e, "token", None)
    if isinstance(e, UnexpectedToken) and ip is not None and ip.parser_state.value_stack:
        top = ip.parser_state.value_stack[-1]
        if (isinstance(top, Token) and top.type == "NAME" and str(top) in _all_clause_keywords()
                and top.start_pos is not None and _starts_line(text, top.start_pos)
                and (token.type == "$END" or token.line == top.line)):
            result = top
    e._bmad_keyword_as_name = result  # type: ignore[attr-defined]
    return result


def error_state(e: UnexpectedInput, text: str):
    """The parser state the error is explained from (the same state twice in a row is one mistake
    continuing): for a keyword read as a name, the state where the keyword should have come."""
    if isinstance(e, UnexpectedToken):
        keyword = _keyword_read_as_name(e, text)
        if keyword is not None:
            at_keyword = _error_at_keyword(e, keyword)
            if at_keyword is not None:
                return _position(at_keyword)
    return _position(e)


def _error_at_keyword(e: UnexpectedToken, keyword: Token) -> UnexpectedToken | None:
    """The error the parser would have reported had the keyword been read as one."""
    from lark.parsers.lalr_interactive_parser import InteractiveParser

    cached = getattr(e, "_bmad_error_at_keyword", "unset")
    if cached != "unset":
        return cached
    e._bmad_error_at_keyword = None  # type: ignore[attr-defined]

    ip = e.interactive_parser
    keyword_type = keyword_terminals()[str(keyword)]
    before = ip.parser_state.state_stack[-2]
    states = ip.parser_state.parse_conf.parse_table.states
    # refused outright: no tree callback runs, so the values may be shared; otherwise (reductions
    # first) work on a deep copy, since callbacks may extend a child's list in place
    state = ip.parser_state.copy(deepcopy_values=keyword_type in states[before])
    state.state_stack.pop()
    state.value_stack.pop()
    as_keyword = Token.new_borrow_pos(keyword_type, str(keyword), keyword)
    try:
        state.feed_token(as_keyword)
    except UnexpectedToken as at_keyword:
        at_keyword.interactive_parser = InteractiveParser(ip.parser, state, ip.lexer_thread)
        e._bmad_error_at_keyword = at_keyword  # type: ignore[attr-defined]
        return at_keyword
    return None


# ----------------------------------------------------------------------------------------------
# Where the parser was: the last thing it read before the error


def _previous_extent(e: UnexpectedInput) -> tuple[int, int, str] | None:
    """(start, end, text) of the last token the parser took before the error."""
    ip = getattr(e, "interactive_parser", None)
    values = ip.parser_state.value_stack if ip is not None else None
    if not values:
        return None
    value = values[-1]
    while isinstance(value, Tree):
        children = [c for c in value.children if isinstance(c, (Token, Tree))]
        if not children:
            meta = value.meta
            if getattr(meta, "empty", True):
                return None
            return meta.end_pos - 1, meta.end_pos, ""
        value = children[-1]
    if not isinstance(value, Token) or value.start_pos is None or value.end_pos is None:
        return None
    return value.start_pos, value.end_pos, str(value)


def _on_a_later_line(e: UnexpectedToken, text: str, previous: tuple[int, int, str] | None) -> bool:
    if previous is None:
        return False
    if e.token.type == "$END" or e.token.start_pos is None:
        return "\n" in text[previous[1]:]
    return "\n" in text[previous[1]:e.token.start_pos]


# ----------------------------------------------------------------------------------------------
# Recovery


def _closers_before(e: UnexpectedToken, limit: int = 8) -> int | None:
    """How many `}` to insert so that the unexpected token fits (None if that doesn't help)."""
    cached = getattr(e, "_bmad_closers", "unset")
    if cached != "unset":
        return cached
    result = None
    try:
        parser_state = e.interactive_parser.parser_state
        stack = list(parser_state.state_stack)
        for count in range(1, limit + 1):
            stack = _shift(parser_state, stack, "RBRACE")
            if stack is None:
                break
            if _shift(parser_state, stack, e.token.type) is not None:
                result = count
                break
    except Exception:
        result = None
    e._bmad_closers = result  # type: ignore[attr-defined]
    return result


def _stands_for_a_name(e: UnexpectedToken, text: str) -> bool:
    """A number or word right after the `.` of a dotted path (`a.items.0`), where only a name fits."""
    start = e.token.start_pos
    return (e.token.type != "$END" and start is not None and start > 0 and text[start - 1] == "."
            and set(e.expected) == {"NAME"} and keyword_terminals().get(str(e.token)) is None)


def _opener_before(e: UnexpectedToken) -> bool:
    """`workflow review` then `task ...` on the next line: would a `{` before the token make it fit?"""
    token = e.token
    if token.type == "$END" or keyword_terminals().get(str(token)) != token.type:
        return False
    try:
        parser_state = e.interactive_parser.parser_state
        stack = _shift(parser_state, list(parser_state.state_stack), "LBRACE")
        return stack is not None and _shift(parser_state, stack, token.type) is not None
    except Exception:
        return False


def _shift(parser_state, stack: list, token_type: str) -> list | None:
    """The LALR state stack after taking a token of this type (None if the parser would refuse it),
    computed on state numbers alone: no tree is built (Lark's tree callbacks may extend a child's
    list in place, so trial parses on shared values would corrupt the real tree), and no copy of
    the parse is made (Lark's `accepts()` deep-copies it for every terminal: too slow to ask on
    every error)."""
    from lark.parsers.lalr_analysis import Shift

    conf = parser_state.parse_conf
    states = conf.parse_table.states
    stack = list(stack)
    while True:
        action = states[stack[-1]].get(token_type)
        if action is None:
            return None
        kind, arg = action
        if kind is Shift:
            stack.append(arg)
            return stack
        size = len(arg.expansion)
        if size:
            del stack[-size:]
        stack.append(states[stack[-1]][arg.origin.name][1])
        if token_type == "$END" and stack[-1] == conf.end_state:
            return stack


def _skip_characters(e: UnexpectedCharacters, text: str) -> None:
    """Move the lexer past a bad stretch: an unterminated string to its line's end, else a word."""
    state = e.interactive_parser.lexer_thread.state
    pos = state.line_ctr.char_pos
    if text.startswith('"""', pos):
        end = len(text)
    elif text.startswith('"', pos):
        newline = text.find("\n", pos)
        end = len(text) if newline == -1 else newline
    else:
        end = pos + 1
        while end < len(text) and not text[end].isspace() and not text[end].isalnum() and text[end] not in '{}[]()"':
            end += 1
    state.line_ctr.feed(text[pos:end])


def _can_pop_to(e: UnexpectedToken, token_type: str) -> bool:
    """Would dropping half-written constructs ever let the parser take `token_type`?"""
    parser_state = e.interactive_parser.parser_state
    states = parser_state.parse_conf.parse_table.states
    stack = parser_state.state_stack
    return any(token_type in states[state] for state in stack)


def _at_clause_start(e: UnexpectedToken, text: str) -> bool:
    """Is the unexpected token a word where a clause of its block may start (a misspelt keyword)?"""
    kind = _word_block_kind(e.token, text)
    if kind is None:
        return False
    parser_state = e.interactive_parser.parser_state  # the state's own actions: no trial parses
    expected = parser_state.parse_conf.parse_table.states[parser_state.position]
    return any(keyword_terminals()[word] in expected for word in clause_keywords(kind))


def _skip_rest_of_clause(e: UnexpectedToken, text: str) -> None:
    """Move the lexer to the end of the token's line, past any block opened on it, but never past
    a `}` that closes the enclosing block."""
    state = e.interactive_parser.lexer_thread.state
    position = state.line_ctr.char_pos
    if position != e.token.end_pos:
        return
    depth = 0
    end = position
    for m in _SCAN.finditer(text, position):
        if depth == 0 and "\n" in text[end:m.start()]:
            break
        if m.lastgroup == "open":
            depth += 1
        elif m.lastgroup == "close":
            if depth == 0:
                break
            depth -= 1
        end = m.end()
    if end > position:
        state.line_ctr.feed(text[position:end])


def _skip_block(e: UnexpectedToken, text: str) -> bool:
    """Move the lexer past the block the unexpected `{` opens, up to and including its `}`: its
    clauses can't be parsed where they are, and its `}` must not close the enclosing block."""
    start = e.token.start_pos
    if start is None:
        return False
    depth = 0
    for m in _SCAN.finditer(text, start):
        if m.lastgroup == "open":
            depth += 1
        elif m.lastgroup == "close":
            depth -= 1
            if depth == 0:
                state = e.interactive_parser.lexer_thread.state
                position = state.line_ctr.char_pos
                if position != e.token.end_pos or m.end() <= position:
                    return False
                state.line_ctr.feed(text[position:m.end()])
                e._bmad_fed_closers = 1  # type: ignore[attr-defined]  # its `}` never reaches the lexer
                return True
    return False


def _pop_until(e: UnexpectedToken, token_type: str) -> bool:
    """Panic mode: drop half-written constructs until the parser can take `token_type`."""
    parser_state = e.interactive_parser.parser_state
    states = parser_state.parse_conf.parse_table.states
    stack, values = parser_state.state_stack, parser_state.value_stack
    while len(stack) > 1 and values and token_type not in states[stack[-1]]:
        stack.pop()
        values.pop()
    return token_type in states[stack[-1]]


def recover(e: UnexpectedInput, text: str, skipped_openers: list[int]) -> bool:
    """Let Lark continue after an error (True) or give up (False).

    `skipped_openers` counts the `{` we skipped, so that their `}` are skipped too instead of
    closing an enclosing block early.
    """
    try:
        if isinstance(e, UnexpectedCharacters):
            _skip_characters(e, text)
            return True
        if not isinstance(e, UnexpectedToken):
            return False
        ip = e.interactive_parser
        end = Token.new_borrow_pos("RBRACE", "}", e.token)
        keyword = _keyword_read_as_name(e, text)
        if keyword is not None and _resync_at_keyword(e, keyword):
            return True
        if e.token.type == "$END":
            for _ in range(MAX_CLOSE_AT_END):
                accepts = ip.accepts()
                if "$END" in accepts:
                    return True
                if "RBRACE" not in accepts and not _pop_until(e, "RBRACE"):
                    return False
                ip.feed_token(end)
                e._bmad_fed_closers = getattr(e, "_bmad_fed_closers", 0) + 1  # type: ignore[attr-defined]
            return False
        if skipped_openers[0] > 0 and e.token.type not in ("LBRACE", "RBRACE"):
            return True  # inside a block we dropped: skip to its `}`
        if _stands_for_a_name(e, text):
            # `a.items.0`: read the misplaced word as the name the dotted path needs, so the
            # expression (and the `{` after it) parse on instead of cascading into later errors
            ip.feed_token(Token.new_borrow_pos("NAME", "_", e.token))
            return True
        if _wrong_level(e, text) is not None:
            if _starts_line(text, e.token.start_pos):
                _skip_rest_of_clause(e, text)
            return True  # drop the misplaced clause; the block stays open
        if _at_clause_start(e, text) and _starts_line(text, e.token.start_pos):
            _skip_rest_of_clause(e, text)  # `stratgy parallel`: `parallel` must not start a block
            return True
        if _opener_before(e):
            ip.feed_token(Token.new_borrow_pos("LBRACE", "{", e.token))
            ip.feed_token(e.token)
            return True
        closers = _closers_before(e)
        if closers:
            for _ in range(closers):
                ip.feed_token(end)
            e._bmad_fed_closers = closers  # type: ignore[attr-defined]
            ip.feed_token(e.token)
            return True
        if e.token.type == "LBRACE":
            if _skip_block(e, text):
                return True
            skipped_openers[0] += 1
            return True
        if e.token.type == "RBRACE":
            if skipped_openers[0] > 0:
                skipped_openers[0] -= 1
                return True
            if _pop_until(e, "RBRACE"):
                ip.feed_token(e.token)
            return True
        if (keyword_terminals().get(str(e.token)) == e.token.type and e.token.start_pos is not None
                and _starts_line(text, e.token.start_pos) and _can_pop_to(e, e.token.type)):
            _pop_until(e, e.token.type)
            ip.feed_token(e.token)  # a clause keyword on a new line: drop the unfinished clause before it
        return True  # skip the token
    except Exception:
        return False


def _resync_at_keyword(e: UnexpectedToken, keyword: Token) -> bool:
    """Drop the unfinished clause that swallowed `keyword` as a name, and go on from the keyword."""
    ip = e.interactive_parser
    parser_state = ip.parser_state
    keyword_type = keyword_terminals()[str(keyword)]
    saved = list(parser_state.state_stack), list(parser_state.value_stack)
    parser_state.state_stack.pop()
    parser_state.value_stack.pop()
    if not _can_pop_to(e, keyword_type):
        parser_state.state_stack[:], parser_state.value_stack[:] = saved
        return False
    _pop_until(e, keyword_type)
    ip.feed_token(Token.new_borrow_pos(keyword_type, str(keyword), keyword))
    if e.token.type != "$END":
        try:
            ip.feed_token(e.token)
        except UnexpectedToken:
            pass  # dropped; what follows is parsed (and reported) on its own
    return True


MAX_CLOSE_AT_END = 64


# ----------------------------------------------------------------------------------------------
# Descriptions


def _token_text(token: Token) -> str:
    value = str(token)
    return value if len(value) <= 40 else value[:37] + "..."


def _expected_words(expected: set[str]) -> str:
    words = _terminal_words()
    names = sorted({words.get(name, name) for name in expected if name != "$END"})
    if "$END" in expected:
        names.append("the end of the file")
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def _did_you_mean(word: str, expected: set[str]) -> str | None:
    words = _terminal_words()
    keywords = [words[name].strip("`") for name in expected
                if name in words and words[name].startswith("`") and words[name].strip("`").isidentifier()]
    match = difflib.get_close_matches(word, keywords, n=1, cutoff=0.6)
    return f"did you mean `{match[0]}`?" if match else None


_NUMBER_BEFORE = re.compile(r"(?P<keyword>[A-Za-z_+]*)\s+(?P<number>[0-9][0-9_.]*)[ \t]+$")
_DURATION_KEYWORDS = {"timeout", "to", "latency", "+"}


def _spaced_unit(e: UnexpectedToken, text: str, source_map: SourceMap) -> Diagnostic | None:
    """`timeout 30 parsecs`: a number followed by a word that is not a clause."""
    token = e.token
    if token.type != "NAME" or token.start_pos is None:
        return None
    line_start = text.rfind("\n", 0, token.start_pos) + 1
    m = _NUMBER_BEFORE.search(text, line_start, token.start_pos)
    if not m:
        return None
    written = f"{m.group('number')} {token}"
    span = source_map.span(m.start("number"), token.end_pos)
    keyword = m.group("keyword")
    if keyword in _DURATION_KEYWORDS or keyword == "budget":
        example = "`30s`, `10m` or `600ms`" if keyword != "budget" else "`10m`, `$2.00 per run` or `400k tokens`"
        return error("BMAD-E011", span, f"`{written}` is not a duration",
                     f"write the unit right after the number, e.g. {example}")
    return error("BMAD-E012", span, f"`{written}` is not a number with a unit",
                 "write the unit right after the number (`200k`, `30s`), or put the word on its own line")


_CONDITION_KEYWORD = re.compile(
    r"(?:\b(?P<when>when)(?:[^{}\n]*(?:==|!=|<=|>=|<|>|\band|\bor|\bnot|\bin))?"
    r"|\bfor\s+each\s+[A-Za-z_]\w*\s+(?P<in>in))\s*$")


def _missing_condition(e: UnexpectedToken, text: str, source_map: SourceMap) -> Diagnostic | None:
    """`task a when { prompt "x" }`: with no condition, the task's `{` reads as a JSON object (an
    object literal is a value), so point at that `{` rather than at what follows it."""
    token = e.token
    if token.type in ("STRING", "$END") or token.start_pos is None:
        return None
    brace = None
    braces = _open_braces(text, token.start_pos)
    if token.type != "RBRACE" and braces:
        brace = braces[-1]  # `when { prompt ...`: inside the would-be object
    before = text[:token.start_pos].rstrip()
    if brace is None or not _CONDITION_KEYWORD.search(text, 0, brace):
        if not before.endswith("}"):
            return None
        closed = _open_braces(text, len(before) - 1)  # `when { } }`: the object closed, no body follows
        if not closed:
            return None
        brace = closed[-1]
    m = _CONDITION_KEYWORD.search(text, 0, brace)
    if m is None:
        return None
    hint = ("`when` needs a condition before the task's `{ ... }`, e.g. `when score >= 7 { ... }`"
            if m.group("when") else
            "`for each X in` needs a list before the task's `{ ... }`, e.g. `for each doc in docs { ... }`")
    return error("BMAD-E049", source_map.span(brace, brace + 1), "expected a value here, found `{`", hint)


def describe(e: UnexpectedInput, text: str, source_map: SourceMap) -> Diagnostic:
    """One Diagnostic in plain words for a Lark error."""
    if isinstance(e, UnexpectedCharacters):
        return _describe_characters(e, text, source_map)
    if isinstance(e, UnexpectedToken):
        return _describe_token(e, text, source_map)
    # UnexpectedEOF (line = column = -1): the end of the file
    return error("BMAD-E005", source_map.end_span(), "the file ends too early",
                 f"expected {_expected_words(set(getattr(e, 'expected', ()) or ()))}")


def _describe_characters(e: UnexpectedCharacters, text: str, source_map: SourceMap) -> Diagnostic:
    pos = e.pos_in_stream
    span = source_map.span(pos, pos + 1)
    if text.startswith('"""', pos):
        return error("BMAD-E003", source_map.span(pos, pos + 3), 'this `"""` block is never closed',
                     'end it with `"""`')
    if text.startswith('"', pos):
        end = text.find("\n", pos)
        end = len(text) if end == -1 else end
        return error("BMAD-E002", source_map.span(pos, end), "this string is never closed",
                     'add a closing `"` before the end of the line; use `"""..."""` for text over several lines')
    char = text[pos] if pos < len(text) else ""
    shown = f"`{char}`" if char.isprintable() and not char.isspace() else f"U+{ord(char):04X}" if char else "end of file"
    expected = _expected_words(set(e.allowed or ()))
    hint = f"expected {expected}" if expected else None
    if char == "$":
        return error("BMAD-E010", span, "a `$` must start an amount of money", "write e.g. `$0.50`")
    if char == ";":
        return error("BMAD-E001", span, "unexpected character `;`",
                     "bmad needs no `;`: a clause ends where the next one begins; remove it")
    if char in "'\u2018\u2019\u201c\u201d":
        return error("BMAD-E001", span, f"unexpected character {shown}",
                     'strings are written in straight double quotes: `"..."`')
    if not char.isascii() and (char.isalnum() or char == "_"):
        return error("BMAD-E001", span, f"unexpected character {shown} in a name",
                     _ascii_name_hint(text, pos))
    return error("BMAD-E001", span, f"unexpected character {shown}", hint)


def _ascii_name_hint(text: str, pos: int) -> str:
    """Names are ASCII (letters, digits, `_`): suggest the word with its accents taken off."""
    start, end = pos, pos
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    word = text[start:end]
    plain = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    plain = re.sub(r"[^A-Za-z0-9_]", "", plain)
    if plain and not plain[0].isdigit() and plain != word:
        return f"names use ASCII letters, digits and `_`: e.g. `{plain}` for `{word}` (text in quotes may use any characters)"
    return "names use ASCII letters, digits and `_` (text in quotes may use any characters)"


def _describe_token(e: UnexpectedToken, text: str, source_map: SourceMap) -> Diagnostic:
    keyword = _keyword_read_as_name(e, text)
    if keyword is not None:
        at_keyword = _error_at_keyword(e, keyword)
        if at_keyword is not None:
            return _describe_token(at_keyword, text, source_map)

    token = e.token
    at_end = token.type == "$END"
    span = source_map.end_span() if at_end or token.start_pos is None else source_map.token_span(token)
    offset = len(text) if at_end or token.start_pos is None else token.start_pos
    expected = set(e.accepts or e.expected or ())
    previous = _previous_extent(e)

    wrong_level = None if at_end else _wrong_level(e, text)
    if wrong_level is not None:
        return _describe_wrong_level(wrong_level, span, source_map)

    # a block left open: name it and say where it was opened
    if "RBRACE" in expected and (at_end or _closers_before(e)):
        blocks = open_blocks(text, offset)
        if blocks:
            block = blocks[-1]
            opened = source_map.span(block.start, block.start + len(block.kind))
            where = _describe_block(block, source_map)
            message = (f"the file ends before `}}` closes {where}" if at_end
                       else f"expected `}}` to close {where}")
            return error("BMAD-E006", span, message, "add the missing `}`",
                         [Related(opened, "opened here")])
        if at_end:  # the block's `{` was missing too (reported where it belongs)
            return error("BMAD-E006", span, "the file ends before a `}` closes the block above",
                         "add the missing `}`")

    if token.type == "RBRACE" and not open_blocks(text, offset):
        return error("BMAD-E004", span, "this `}` has no block to close",
                     "remove it, or check the braces above: one block may be closed twice")

    if not at_end:
        after_block = _clause_after_closed_block(e, text, span, source_map)
        if after_block is not None:
            return after_block

    spaced = _spaced_unit(e, text, source_map)
    if spaced is not None:
        return spaced

    missing = _missing_condition(e, text, source_map)
    if missing is not None:
        return missing

    use = _use_without_std(e, source_map)
    if use is not None:
        return use

    if not at_end:
        misspelt = _misspelt_keyword(e, expected, text, span)
        if misspelt is not None:
            return misspelt

    punctuation = _punctuation_after_keyword(e, text, span)
    if punctuation is not None:
        return punctuation

    known = _match_known_mistake(e)
    if known is not None:
        previous_text = _token_text_of(previous[2]) if previous else ""
        if known.after is not None and previous is not None and previous[2] and _on_a_later_line(e, text, previous):
            # the value is missing at the end of the line above: point there
            message = known.after.replace("{previous}", previous_text).replace("`{{`", "`{`")
            example = _CLAUSE_EXAMPLES.get(previous_text)
            hint = known.hint
            if example and known.code in ("BMAD-E038", "BMAD-E009", "BMAD-E036"):
                hint = f"write e.g. `{example}`" + ('; `"""..."""` holds several lines' if known.code == "BMAD-E038" else "")
            return error(known.code, source_map.span(previous[0], previous[1]), message, hint)
        found = "the end of the file" if at_end else f"`{_token_text(token)}`"
        message = (known.message.replace("`{token}`", found).replace("{previous}", previous_text)
                   .replace("`{{`", "`{`"))
        hint = known.hint
        example = _CLAUSE_EXAMPLES.get(previous_text)
        if example and known.code in ("BMAD-E038", "BMAD-E009", "BMAD-E036"):  # show the clause the user is writing
            hint = f"write e.g. `{example}`" + ('; `"""..."""` holds several lines' if known.code == "BMAD-E038" else "")
        if token.type == "NAME" and "`" + "{token}" + "` is not" in known.message:
            hint = _did_you_mean(str(token), expected) or hint
        return error(known.code, span, message, hint)

    if not at_end:
        for explain in (_missing_comma, _dangling_comma, _missing_word, _unknown_clause):
            found = explain(e, expected, text, span, source_map)
            if found is not None:
                return found

    unclosed = _unclosed_bracket(e, expected, text, span, source_map)
    if unclosed is not None:
        return unclosed

    if at_end:
        return error("BMAD-E005", span, "the file ends too early",
                     f"expected {_expected_words(expected)}")
    hint = None
    if token.type == "NAME":
        hint = _did_you_mean(str(token), expected)
    hint = hint or f"expected {_expected_words(expected)}"
    return error("BMAD-E004", span, f"unexpected `{_token_text(token)}`", hint)


def _token_text_of(value: str) -> str:
    return value if len(value) <= 40 else value[:37] + "..."


def _use_without_std(e: UnexpectedToken, source_map: SourceMap) -> Diagnostic | None:
    """`use code_review` followed by anything: point at the module name and say what to write."""
    ip = getattr(e, "interactive_parser", None)
    values = ip.parser_state.value_stack if ip is not None else []
    if len(values) < 2 or not isinstance(values[-1], Token) or not isinstance(values[-2], Token):
        return None
    if values[-2].type != keyword_terminals().get("use") or values[-1].type != "NAME" or e.token.type == "DOT":
        return None
    name = str(values[-1])
    modules = _stdlib_modules()
    if name in modules:
        hint = f"write `use std.{name}`"
    else:
        close = _keyword_suggestion(name, modules)
        hint = (f"the standard library has no `{name}`" + (f"; did you mean `use std.{close}`?" if close else "")
                + f"; to load your own file write `import \"{name}.bmad\"`")
    return error("BMAD-E043", source_map.token_span(values[-1]), "`use` names a standard-library module", hint)


@cache
def _stdlib_modules() -> tuple[str, ...]:
    from importlib import resources

    try:
        return tuple(sorted(f.name[:-5] for f in resources.files("bmad.stdlib").iterdir() if f.name.endswith(".bmad")))
    except (ModuleNotFoundError, OSError):
        return ()


_SEPARATED_TOKENS = ("NAME", "MODEL_ID", "STRING", "QUANTITY", "JSON_NUMBER", "LONG_STRING")


def _missing_comma(e: UnexpectedToken, expected: set[str], text: str, span: Span,
                   source_map: SourceMap) -> Diagnostic | None:
    """`depends a b`, `[gpt-4o claude-sonnet]`, `{ "a": 1 "b": 2 }`: two items with no comma between."""
    token = e.token
    if "COMMA" not in expected or token.type not in _SEPARATED_TOKENS:
        return None
    previous = _previous_extent(e)
    if previous is None or _on_a_later_line(e, text, previous):
        return None
    blocks = open_blocks(text, token.start_pos)
    if blocks and blocks[-1].kind == "json":
        return error("BMAD-E048", span, f"this is not valid JSON: expected `,` before `{_token_text(token)}`",
                     'separate JSON members with commas: `{ "type": "object", "required": ["a"] }`')
    return error("BMAD-E004", span, f"expected `,` before `{_token_text(token)}`",
                 "separate the items with commas, e.g. `depends draft, review` or `[gpt-4o, claude-sonnet]`")


def _word_choices() -> dict[str, tuple[str, str]]:
    """Clause keyword -> (what it takes, an example) for clauses that take one word or name."""
    from bmad.compiler import lower

    def one_of(words) -> str:
        words = list(words)
        return ", ".join(words[:-1]) + " or " + words[-1]

    return {
        "strategy": (f"a strategy ({one_of(lower.STRATEGIES)})", "strategy parallel"),
        "optimize": (f"a goal ({one_of(lower.OBJECTIVES)})", "optimize cost"),
        "priority": (f"a priority ({one_of(lower.PRIORITIES)})", "priority high"),
        "on_error": (f"what to do ({one_of(lower.ON_ERROR)})", "on_error skip"),
        "route": (f"a strategy ({one_of(lower.ROUTES)})", "route cheapest"),
        "kind": (f"a provider kind ({one_of(lower.PROVIDER_KINDS)})", "kind openai"),
        "output": ("the name of a task", "output summarize"),
        "depends": ("the names of tasks", "depends draft, review"),
        "needs": ("capabilities", "needs code, reasoning"),
        "reduce": ("the name of a `for each` task", "reduce summaries"),
        "model": ("a model's name", "model gpt-4o-mini"),
        "provider": ("a provider's name", "provider openai"),
        "input": ("a name and a type", "input topic: text"),
        "task": ("a name", "task summarize { ... }"),
        "by": ("a model's name", "judged by gpt-4o"),
        "judge": ("a model's name", "consensus judge gpt-4o among [a, b]"),
        "backoff": ("a backoff (exponential)", "retry 3 backoff exponential 1s to 30s"),
        "env": ("an environment variable", "api_key env OPENAI_API_KEY"),
    }


def _missing_word(e: UnexpectedToken, expected: set[str], text: str, span: Span,
                  source_map: SourceMap) -> Diagnostic | None:
    """`priority` / `output` / `depends` with nothing after them (or a `:` / `=` in between)."""
    if not expected or not expected <= {"NAME", "MODEL_ID"}:
        return None
    previous = _previous_extent(e)
    if previous is None:
        return None
    word = previous[2]
    choices = _word_choices().get(word)
    if choices is None:
        return None
    what, example = choices
    token = e.token
    if _on_a_later_line(e, text, previous):
        return error("BMAD-E004", source_map.span(previous[0], previous[1]), f"expected {what} after `{word}`",
                     f"e.g. `{example}`")
    return error("BMAD-E004", span, f"expected {what} after `{word}`, found `{_token_text(token)}`",
                 f"e.g. `{example}`")


def _dangling_comma(e: UnexpectedToken, expected: set[str], text: str, span: Span,
                    source_map: SourceMap) -> Diagnostic | None:
    """`depends a, b,` at the end of a line: the list promises another item."""
    previous = _previous_extent(e)
    if previous is None or previous[2] != "," or not _on_a_later_line(e, text, previous):
        return None
    return error("BMAD-E004", source_map.span(previous[0], previous[1]), "this `,` is not followed by another item",
                 "remove the `,`, or write the next item after it")


# what a clause looks like, for `prompt: "..."` and `strategy = parallel`
_CLAUSE_EXAMPLES = {
    "prompt": 'prompt "..."', "system": 'system "..."', "about": 'about "..."', "import": 'import "file.bmad"',
    "base_url": 'base_url "http://localhost:11434"', "id": 'id "gpt-4o-mini"', "path": 'path "model.gguf"',
    "data": 'data "answers.jsonl"', "max_tokens": "max_tokens 400", "temperature": "temperature 0.2",
    "timeout": "timeout 30s", "retry": "retry 3", "context": "context 128k", "best_of": "best_of 3",
    "budget": "budget $2.00 per run", "quality": "quality >= 0.8", "fallback": "fallback [gpt-4o, claude-sonnet]",
    "consensus": "consensus vote among [gpt-4o, claude-sonnet, gemini-flash]", "returns": "returns text",
    "limits": "limits { rpm 500 }", "skills": "skills { code 0.9 }", "api_key": "api_key env OPENAI_API_KEY",
    "price": "price input $0.15 output $0.60 per 1M", "latency": "latency 600ms",
}


def _punctuation_after_keyword(e: UnexpectedToken, text: str, span: Span) -> Diagnostic | None:
    """`prompt: "..."`, `strategy = parallel`: a clause keyword followed by `:` or `=`."""
    token = e.token
    if token.type not in ("COLON", "EQUAL"):
        return None
    previous = _previous_extent(e)
    if previous is None or _on_a_later_line(e, text, previous) or previous[2] not in _all_clause_keywords():
        return None
    word = previous[2]
    example = _CLAUSE_EXAMPLES.get(word) or (_word_choices().get(word) or (None, None))[1]
    return error("BMAD-E004", span, f"`{word}` is followed by its value, without `{token}`",
                 f"write e.g. `{example}`" if example else f"remove the `{token}`")


_BRACKETS = {"RSQB": ("[", "]", "the list"), "RPAR": ("(", ")", "the parentheses"), "MORETHAN": ("<", ">", "`list<`")}


def _unclosed_bracket(e: UnexpectedToken, expected: set[str], text: str, span: Span,
                      source_map: SourceMap) -> Diagnostic | None:
    """A `[`, `(` or `list<` still open where the line (or the file) ends."""
    closers = [name for name in _BRACKETS if name in expected]
    previous = _previous_extent(e)
    if len(closers) != 1 or previous is None:
        return None
    if not (_on_a_later_line(e, text, previous) or e.token.type in ("RBRACE", "$END")):
        return None
    opener, closer, what = _BRACKETS[closers[0]]
    start = _unclosed_opener(text, previous[1], opener, closer)
    if start is None:
        return None
    line, column = source_map.position(start)
    if closer == ")":
        what = "the call" if re.search(r"[A-Za-z0-9_]\s*$", text[:start]) else what
    return error("BMAD-E004", source_map.span(previous[0], previous[1]),
                 f"expected `{closer}` to close {what} opened at {line}:{column}",
                 f"add the missing `{closer}`" + (", or a `,` before the next item" if "COMMA" in expected else ""),
                 [Related(source_map.span(start, start + 1), "opened here")])


def _unclosed_opener(text: str, upto: int, opener: str, closer: str) -> int | None:
    stack: list[int] = []
    for m in _SCAN.finditer(text, 0, upto):
        if m.lastgroup == "other":
            if m.group() == opener:
                stack.append(m.start())
            elif m.group() == closer and stack:
                stack.pop()
    return stack[-1] if stack else None
