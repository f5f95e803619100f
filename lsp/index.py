"""The tolerant symbol index of one document: declarations, references, blocks and imports.

Built from `tokens.tokenize` with a small state machine, it works on any text, including a document
that does not parse: completion, outline, navigation, rename and semantic tokens read it, so they
keep working while the user types. The compiler's IR stays the authority for diagnostics, types,
prices and plans; this index only knows where names are written and what they name.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from bmad.lsp.keywords import CLAUSES, EXPRESSION_WORDS
from bmad.lsp.tokens import NAME_RE, Token, tokenize

import re

_NAME_AT_START = re.compile(NAME_RE)

# Clause keywords after which a name (or a bracketed list of names) is a model.
_MODEL_LIST_CLAUSES = frozenset({"route", "fallback", "consensus", "best_of", "peer_review", "quality"})

# Tokens after which the grammar wants a name (or an expression) next: a clause keyword written there
# is that name (`depends model`, `else retry 3`), not the start of a new clause.
_NAME_EXPECTED_AFTER = frozenset({
    ",", "(", "[", ":", "=", "==", "!=", "<=", ">=", "<", "+", "-", ".",
    "by", "judge", "rubric", "else", "backoff", "env", "and", "or", "not", "in",
})


@dataclass(slots=True)
class Symbol:
    """A declaration: where its name is written and the extent of the whole declaration."""

    kind: str  # provider model workflow task input loop capability rubric
    name: str
    start: int
    end: int
    full_start: int
    full_end: int
    workflow: str | None = None  # the enclosing workflow (task, input, loop)
    task: str | None = None  # the enclosing task (loop)
    container: str | None = None  # the model that declares a capability
    text: str | None = None  # a rubric's text, as written between its quotes


@dataclass(slots=True)
class Reference:
    """A use of a name. For dotted refs (`risks.score`) the range covers the root only."""

    kind: str  # task model provider workflow value capability argument rubric
    name: str
    start: int
    end: int
    workflow: str | None = None
    task: str | None = None
    path: tuple[str, ...] = ()
    target: str | None = None  # argument: the called workflow
    sees_loop: bool = True  # False in a `for each X in SOURCE` source: X is not bound there yet


@dataclass(slots=True)
class Frame:
    """A `{ ... }` block: provider, model, workflow, parallel, task, skills, limits, json or block."""

    kind: str
    name: str | None
    start: int  # the keyword that opened it
    open: int  # the `{`
    end: int | None = None  # after the `}`; None while unclosed
    workflow: str | None = None
    task: str | None = None


@dataclass(slots=True)
class ImportRef:
    kind: str  # import | use
    path: str  # as written ("models.bmad") or the module ("code_review")
    start: int  # the string or name token
    end: int


@dataclass(slots=True)
class DocumentIndex:
    text: str
    tokens: list[Token]
    symbols: list[Symbol] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    imports: list[ImportRef] = field(default_factory=list)
    clause_starts: list[int] = field(default_factory=list)  # offsets of clause keywords, in order

    # --- lookups -----------------------------------------------------------------------------

    def frame_at(self, offset: int) -> Frame | None:
        """The innermost block whose braces contain `offset`."""
        best = None
        for f in self.frames:
            if f.open < offset and (f.end is None or offset < f.end):
                if best is None or f.open >= best.open:
                    best = f
        return best

    def enclosing(self, offset: int, kind: str) -> Frame | None:
        best = None
        for f in self.frames:
            if f.kind != kind:
                continue
            end = f.end if f.end is not None else len(self.text) + 1
            if f.start <= offset < end and (best is None or f.start >= best.start):
                best = f
        return best

    def symbol_at(self, offset: int) -> Symbol | None:
        for s in self.symbols:
            if s.start <= offset <= s.end:
                return s
        return None

    def reference_at(self, offset: int) -> Reference | None:
        for r in self.references:
            if r.start <= offset <= r.end:
                return r
        return None

    def import_at(self, offset: int) -> ImportRef | None:
        for i in self.imports:
            if i.start <= offset <= i.end:
                return i
        return None

    def declared(self, kind: str, name: str, workflow: str | None = None) -> Symbol | None:
        for s in self.symbols:
            if s.kind == kind and s.name == name and (workflow is None or s.workflow == workflow):
                return s
        return None

    def resolve_local(self, ref: Reference) -> Symbol | None:
        """What a reference names in this file (tasks, inputs and loop variables are per workflow)."""
        if ref.kind == "value":
            if ref.task is not None and ref.sees_loop:
                for s in self.symbols:
                    if s.kind == "loop" and s.name == ref.name and s.task == ref.task \
                            and s.workflow == ref.workflow:
                        return s
            return (self.declared("input", ref.name, ref.workflow)
                    or self.declared("task", ref.name, ref.workflow))
        if ref.kind == "task":
            return self.declared("task", ref.name, ref.workflow)
        if ref.kind == "argument":
            return self.declared("input", ref.name, ref.target) if ref.target else None
        if ref.kind in ("model", "provider", "workflow", "rubric"):
            return self.declared(ref.kind, ref.name)
        return None

    def names_in_scope(self, workflow: str | None, task: str | None) -> list[Symbol]:
        """Loop variables of `task`, then inputs and tasks of `workflow` (what `{{ }}` may name)."""
        loops = [s for s in self.symbols if s.kind == "loop" and s.task == task and s.workflow == workflow]
        rest = [s for s in self.symbols if s.kind in ("input", "task") and s.workflow == workflow]
        return loops + rest


def build_index(text: str) -> DocumentIndex:
    """Scan `text` into a `DocumentIndex`; never raises."""
    return _Scanner(text).run()


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = DocumentIndex(text, self.tokens)
        self.stack: list[Frame] = []
        self.pending: Frame | None = None  # a header waiting for its `{`
        self.pending_symbol: Symbol | None = None
        self.clause: str | None = None
        self.clause_args = 0  # significant tokens seen since the clause keyword
        self.bracket = 0  # `[` depth inside the clause
        self.prev: Token | None = None
        # task header state: task name, and what the header is reading
        self.header: dict | None = None

    # --- helpers --------------------------------------------------------------------------

    @property
    def frame(self) -> Frame | None:
        return self.stack[-1] if self.stack else None

    @property
    def frame_kind(self) -> str:
        return self.stack[-1].kind if self.stack else "top"

    def workflow(self) -> str | None:
        for f in reversed(self.stack):
            if f.kind == "workflow":
                return f.name
        return None

    def task(self) -> str | None:
        for f in reversed(self.stack):
            if f.kind == "task":
                return f.name
        return None

    def add_symbol(self, kind: str, tok: Token, full_start: int, **kw) -> Symbol:
        s = Symbol(kind, tok.text, tok.start, tok.end, full_start, tok.end, **kw)
        self.index.symbols.append(s)
        return s

    def add_ref(self, kind: str, tok: Token, **kw) -> None:
        self.index.references.append(Reference(kind, tok.text, tok.start, tok.end, **kw))

    def add_value_ref(self, text: str, start: int, workflow: str | None, task: str | None,
                      interpolated: bool = False, sees_loop: bool = True) -> None:
        m = _NAME_AT_START.match(text)
        if not m:
            return
        path = tuple(m.group().split("."))
        root = path[0]
        if root in EXPRESSION_WORDS and not interpolated:  # `{{ each }}` names a task called `each`
            return
        self.index.references.append(
            Reference("value", root, start, start + len(root), workflow, task, path, sees_loop=sees_loop))

    def open_frame(self, kind: str, name: str | None, start: int, brace: Token, *,
                   task: str | None = None) -> None:
        frame = Frame(kind, name, start, brace.start, None,
                      name if kind == "workflow" else self.workflow(),
                      name if kind == "task" else self.task())
        self.stack.append(frame)
        self.index.frames.append(frame)

    # --- the walk -------------------------------------------------------------------------

    def run(self) -> DocumentIndex:
        for tok in self.tokens:
            if tok.kind == "comment":
                continue
            try:
                self.step(tok)
            except Exception:  # a scanner bug must never cost the user their outline
                self.clause = None
            self.prev = tok
        # unclosed frames extend to the end of the text
        for frame in self.index.frames:
            if frame.end is None and frame.name is not None:
                for s in self.index.symbols:
                    if s.kind == frame.kind and s.name == frame.name and s.full_start == frame.start:
                        s.full_end = len(self.text)
        for s in self.index.symbols:
            if s.full_end < s.end:
                s.full_end = s.end
        return self.index

    def is_clause_start(self, tok: Token) -> bool:
        """Whether a clause keyword here starts a clause, as the compiler's contextual lexer decides:
        at the start of a line or block, or wherever the clause before it may end and no name is
        wanted next (`prompt "y" depends a`, `depends a model m`: clauses share a line freely)."""
        prev = self.prev
        if tok.line_start or prev is None or prev.text in ("{", "}", ";"):
            return True
        if self.clause is not None and self.clause_args == 0:
            return False  # right after a clause keyword: its argument (`depends model`)
        if self.bracket > 0:
            return False
        if prev.kind in ("op", "name") and prev.text in _NAME_EXPECTED_AFTER:
            return False
        if prev.kind == "string" and not prev.closed:
            return False  # an unterminated string runs to the end of its line
        return True

    def step(self, tok: Token) -> None:
        if self.header is not None and self.step_task_header(tok):
            return
        if tok.kind == "op" and tok.text == "{":
            self.on_open_brace(tok)
            return
        if tok.kind == "op" and tok.text == "}":
            self.on_close_brace(tok)
            return
        kind = self.frame_kind
        if kind == "json":
            return
        if tok.kind == "name" and self.is_clause_start(tok) and tok.text in CLAUSES.get(kind, ()):
            self.clause, self.clause_args, self.bracket = tok.text, 0, 0
            self.index.clause_starts.append(tok.start)
            self.pending = None
            if kind in ("workflow", "parallel") and tok.text == "task":
                self.header = {"state": "name", "start": tok.start, "name": None}
            elif tok.text == "parallel":
                self.pending = Frame("parallel", None, tok.start, tok.start)
            elif tok.text in ("limits", "skills") and kind in ("provider", "model"):
                self.pending = Frame(tok.text, None, tok.start, tok.start)
            return
        if kind == "skills" and tok.kind == "name" and tok.line_start or (
                kind == "skills" and tok.kind == "name" and self.prev is not None
                and self.prev.text in ("{", ",")):
            model = next((f.name for f in reversed(self.stack) if f.kind == "model"), None)
            self.add_symbol("capability", tok, tok.start, container=model)
            return
        self.on_clause_token(tok)
        self.clause_args += 1

    def on_open_brace(self, tok: Token) -> None:
        if self.pending is not None:
            p = self.pending
            self.open_frame(p.kind, p.name, p.start, tok)
            if self.pending_symbol is not None:
                self.pending_symbol = None
            self.pending = None
        elif self.clause == "returns" or self.frame_kind == "json":
            self.open_frame("json", None, tok.start, tok)
        else:
            self.open_frame("block", None, tok.start, tok)
        self.clause = None

    def on_close_brace(self, tok: Token) -> None:
        self.clause = None
        self.pending = None
        if not self.stack:
            return
        frame = self.stack.pop()
        frame.end = tok.end
        if frame.kind in ("provider", "model", "workflow", "task") and frame.name is not None:
            for s in reversed(self.index.symbols):
                if s.kind == frame.kind and s.name == frame.name and s.full_start == frame.start:
                    s.full_end = tok.end
                    break

    def on_clause_token(self, tok: Token) -> None:
        kind, clause, first = self.frame_kind, self.clause, self.clause_args == 0
        wf, task = self.workflow(), self.task()
        if kind == "top":
            if clause == "import" and first and tok.is_string:
                self.index.imports.append(ImportRef("import", tok.text.strip('"'), tok.start, tok.end))
            elif clause == "use" and first and tok.kind == "name":
                module = tok.text[4:] if tok.text.startswith("std.") else tok.text
                self.index.imports.append(ImportRef("use", module, tok.start, tok.end))
            elif clause == "rubric" and first and tok.kind == "name":
                self.add_symbol("rubric", tok, self.prev.start if self.prev else tok.start)
            elif clause == "rubric" and tok.is_string and self.index.symbols \
                    and self.index.symbols[-1].kind == "rubric":
                rubric = self.index.symbols[-1]
                rubric.text, rubric.full_end = tok.text.strip('"').strip(), tok.end
            elif clause in ("provider", "model", "workflow") and first and tok.kind == "name":
                self.add_symbol(clause, tok, self.prev.start if self.prev else tok.start)
                self.pending = Frame(clause, tok.text, self.prev.start if self.prev else tok.start, tok.start)
            return
        if kind == "model" and clause == "provider" and first and tok.kind == "name":
            self.add_ref("provider", tok)
            return
        if kind in ("workflow", "parallel"):
            if clause == "input" and first and tok.kind == "name":
                self.add_symbol("input", tok, self.prev.start if self.prev else tok.start, workflow=wf)
            elif clause == "output" and tok.kind == "name":
                self.add_ref("task", tok, workflow=wf)
            return
        if kind != "task":
            return
        # inside a task body
        if tok.is_string:
            for it in tok.interpolations:
                self.add_value_ref(it.ref, it.ref_start, wf, task, interpolated=True)
            return
        if tok.kind == "op":
            if tok.text == "[":
                self.bracket += 1
            elif tok.text == "]":
                self.bracket = max(0, self.bracket - 1)
            return
        if tok.kind != "name":
            return
        prev = self.prev.text if self.prev else ""
        if clause == "depends":
            self.add_ref("task", tok, workflow=wf)
        elif clause == "reduce" and first:
            self.add_ref("task", tok, workflow=wf)
        elif clause == "needs":
            self.add_ref("capability", tok, workflow=wf)
        elif clause == "quality" and prev == "rubric":
            self.add_ref("rubric", tok, workflow=wf)
        elif clause == "model" and first:
            self.add_ref("model", tok, workflow=wf)
        elif clause in _MODEL_LIST_CLAUSES and (
                self.bracket > 0 or prev == "by" or (clause == "consensus" and prev == "judge")):
            if tok.text != "models":
                self.add_ref("model", tok, workflow=wf)

    # --- `task NAME [for each X in E] [when E] { ... }` and `task NAME = WF(arg: E)` ----------

    def step_task_header(self, tok: Token) -> bool:
        h = self.header
        assert h is not None
        wf = self.workflow()
        if tok.kind == "comment":
            return True
        if h["state"] == "name":
            if tok.kind == "name":
                h["name"] = tok.text
                self.add_symbol("task", tok, h["start"], workflow=wf)
                h["state"] = "after"
                return True
            self.header = None
            return False
        if tok.kind == "op" and tok.text == "{" and h["state"] != "args":
            self.pending = Frame("task", h["name"], h["start"], tok.start)
            self.header = None
            self.on_open_brace(tok)
            return True
        if tok.kind == "op" and tok.text == "}":
            self.header = None
            return False
        if tok.kind == "name" and tok.line_start and tok.text in CLAUSES.get(self.frame_kind, ()) \
                and h["state"] not in ("args",):
            self.header = None  # a header that never opened: the user moved on
            return False
        name = h["name"]
        if tok.kind == "name":
            if tok.text == "for" or tok.text == "each":
                h["state"] = "loop_var" if tok.text == "each" else h["state"]
                return True
            if h["state"] == "loop_var":
                self.add_symbol("loop", tok, tok.start, workflow=wf, task=name)
                h["state"], h["part"] = "expr", "loop"
                return True
            if tok.text in ("when", "in"):
                h["state"] = "expr"
                if tok.text == "when":
                    h["part"] = "when"
                elif h.get("part") == "loop":
                    h["part"] = "source"  # the list the loop walks: evaluated outside the loop
                return True
            if h["state"] == "call":
                self.add_ref("workflow", tok)
                h["called"] = tok.text
                h["state"] = "call_open"
                return True
            if h["state"] == "args":
                if self.prev is not None and self.prev.text in ("(", ","):
                    self.add_ref("argument", tok, workflow=wf, task=name, target=h.get("called"))
                else:
                    self.add_value_ref(tok.text, tok.start, wf, name)
                return True
            if h["state"] == "expr":
                self.add_value_ref(tok.text, tok.start, wf, name, sees_loop=h.get("part") != "source")
            return True
        if tok.kind == "op":
            if tok.text == "=" and h["state"] in ("after", "expr"):
                h["state"] = "call"
            elif tok.text == "(" and h["state"] == "call_open":
                h["state"] = "args"
            elif tok.text == ")" and h["state"] == "args":
                self.header = None
                self.clause = None
        return True
