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
from dataclasses import dataclass
from functools import cache

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from bmad.compiler.diagnostics import Diagnostic, Related, error
from bmad.compiler.source_map import SourceMap


@dataclass(frozen=True)
class Explanation:
    code: str
    message: str  # may use {token}: the offending text
    hint: str | None = None


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
                 "a file holds `import \"file.bmad\"`, `use std.NAME`, `provider`, `model` and `workflow` declarations"),
     ["wrkflow w { }", "workflow w { } tsk", "task a { }"]),
    (Explanation("BMAD-E035", "this declaration needs a name",
                 "write e.g. `workflow review { ... }`, `task summarize { ... }`"),
     ["workflow { }", "workflow w { task { } }", "provider { }", "model { }",
     "workflow w { task for }"]),
    (Explanation("BMAD-E036", "expected `{{` to open the body, found `{token}`",
                 "a declaration's clauses go between braces: `workflow w { ... }`"),
     ["workflow w task", "provider p kind", "model m provider", "workflow w { task a prompt }",
      "workflow w { parallel task }"]),
    (Explanation("BMAD-E037", "an input needs a type",
                 "write `input NAME: TYPE`, where TYPE is text, number, bool, json or list<T>"),
     ["workflow w { input x }", "workflow w { input x: }", "workflow w { input x task }"]),
    (Explanation("BMAD-E038", "expected a string here, found `{token}`",
                 'text goes in quotes: `prompt "..."`, or `"""..."""` for several lines'),
     ['workflow w { task a { prompt x } }', 'workflow w { task a { prompt } }',
      'workflow w { task a { system x } }', 'workflow w { about x }', 'import x',
      'provider p { base_url x }', 'model m { id x }']),
    (Explanation("BMAD-E039", "`api_key` names an environment variable",
                 "write `api_key env OPENAI_API_KEY`; keys never go in .bmad files"),
     ["provider p { api_key OPENAI_API_KEY }", "provider p { api_key env }"]),
    (Explanation("BMAD-E040", "a quality floor is written `quality >= X`",
                 "e.g. `quality >= 0.8 judged by gpt-4o else refine max 2`"),
     ["workflow w { task a { quality 0.8 } }", "workflow w { quality 0.8 }",
      "workflow w { task a { quality > 0.8 } }"]),
    (Explanation("BMAD-E041", "a price is written `price input $X output $Y per 1M`",
                 "prices are USD per million tokens, e.g. `price input $2.50 output $10.00 per 1M`"),
     ["model m { price $1 }", "model m { price input $1 $2 }", "model m { price input $1 output $2 }"]),
    (Explanation("BMAD-E042", "after `=` a task calls a workflow, found `{token}`",
                 "write `task t = WORKFLOW(arg: value)`; to compare in `when`, use `==`"),
     ["workflow w { task a when x = 1 { } }", "workflow w { task a = 1 }"]),
    (Explanation("BMAD-E043", "`use` names a standard-library module",
                 "write e.g. `use std.code_review`; to load your own file write `import \"file.bmad\"`"),
     ["use models workflow", "use 1"]),
    (Explanation("BMAD-E044", "expected a list of models, found `{token}`",
                 "write e.g. `among [gpt-4o, claude-sonnet]` or `among 3 models`"),
     ["workflow w { task a { consensus vote among } }", "workflow w { task a { fallback gpt-4o } }",
      "workflow w { task a { peer_review among } }", "workflow w { task a { consensus vote among 3 } }"]),
    (Explanation("BMAD-E045", "a consensus clause names its method and participants",
                 "write `consensus vote among [a, b, c] quorum 2`, `consensus judge M among [a, b]` "
                 "or `consensus ensemble by M among [a, b]`"),
     ["workflow w { task a { consensus [a, b] } }", "workflow w { task a { consensus vote [a] } }",
      "workflow w { task a { consensus judge among } }", "workflow w { task a { consensus ensemble among } }"]),
    (Explanation("BMAD-E046", "`returns` takes `text`, `json {schema}` or `enum(A, B)`",
                 'e.g. `returns json { "type": "object" }` or `returns enum(APPROVE, REJECT)`'),
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
                 "a condition compares names, strings, numbers, true/false and lists: `when score >= 7 and kind == \"bug\"`"),
     ["workflow w { task a when } }", "workflow w { task a when x == } }",
      "workflow w { task a when x and } }", "workflow w { task a for each x in } }",
      "workflow w { input x: text = }"]),
    (Explanation("BMAD-E009", "expected a number here, found `{token}`",
                 "e.g. `max_tokens 400`, `temperature 0.2`, `timeout 30s`, `retry 3`, `context 128k`"),
     ["workflow w { task a { max_tokens } }", "workflow w { task a { temperature x } }",
      "workflow w { task a { timeout } }", "workflow w { task a { retry } }", "model m { context }",
      "workflow w { task a { best_of } }", "model m { skills { code } }", "provider p { limits { rpm } }"]),
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


def open_blocks(text: str, upto: int) -> list[OpenBlock]:
    """The blocks opened with `{` and not yet closed before offset `upto`, outermost first."""
    stack: list[OpenBlock] = []
    words: list[tuple[str, int]] = []  # words since the last brace
    for m in _SCAN.finditer(text, 0, upto):
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
            words = []
        elif kind == "close":
            if stack:
                stack.pop()
            words = []
    return stack


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
# Recovery


def _closers_before(e: UnexpectedToken, limit: int = 8) -> int | None:
    """How many `}` to insert so that the unexpected token fits (None if that doesn't help)."""
    cached = getattr(e, "_bmad_closers", "unset")
    if cached != "unset":
        return cached
    result = None
    try:
        ip = e.interactive_parser.copy()
        for count in range(1, limit + 1):
            if "RBRACE" not in ip.accepts():
                break
            ip.feed_token(Token.new_borrow_pos("RBRACE", "}", e.token))
            if e.token.type in ip.accepts():
                result = count
                break
    except Exception:
        result = None
    e._bmad_closers = result  # type: ignore[attr-defined]
    return result


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
        closers = _closers_before(e)
        if closers:
            for _ in range(closers):
                ip.feed_token(end)
            e._bmad_fed_closers = closers  # type: ignore[attr-defined]
            ip.feed_token(e.token)
            return True
        if e.token.type == "LBRACE":
            skipped_openers[0] += 1
            return True
        if e.token.type == "RBRACE":
            if skipped_openers[0] > 0:
                skipped_openers[0] -= 1
                return True
            if _pop_until(e, "RBRACE"):
                ip.feed_token(e.token)
            return True
        return True  # skip the token
    except Exception:
        return False


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


_CONDITION_KEYWORD = re.compile(r"(?:\b(?P<when>when)|\bfor\s+each\s+[A-Za-z_]\w*\s+(?P<in>in))\s*$")


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
    return error("BMAD-E001", span, f"unexpected character {shown}", hint)


def _describe_token(e: UnexpectedToken, text: str, source_map: SourceMap) -> Diagnostic:
    token = e.token
    at_end = token.type == "$END"
    span = source_map.end_span() if at_end or token.start_pos is None else source_map.token_span(token)
    offset = len(text) if at_end or token.start_pos is None else token.start_pos
    expected = set(e.accepts or e.expected or ())

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

    if token.type == "RBRACE" and not open_blocks(text, offset):
        return error("BMAD-E004", span, "this `}` has no block to close",
                     "remove it, or check the braces above: one block may be closed twice")

    spaced = _spaced_unit(e, text, source_map)
    if spaced is not None:
        return spaced

    missing = _missing_condition(e, text, source_map)
    if missing is not None:
        return missing

    known = _match_known_mistake(e)
    if known is not None:
        message = known.message.replace("{token}", _token_text(token) if not at_end else "end of file")
        if known.message.startswith("expected `{{"):
            message = message.replace("`{{`", "`{`")
        hint = known.hint
        if token.type == "NAME" and "`" + "{token}" + "` is not" in known.message:
            hint = _did_you_mean(str(token), expected) or hint
        return error(known.code, span, message, hint)

    if at_end:
        return error("BMAD-E005", span, "the file ends too early",
                     f"expected {_expected_words(expected)}")
    hint = None
    if token.type == "NAME":
        hint = _did_you_mean(str(token), expected)
    hint = hint or f"expected {_expected_words(expected)}"
    return error("BMAD-E004", span, f"unexpected `{_token_text(token)}`", hint)
