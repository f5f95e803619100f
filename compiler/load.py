"""Load a .bmad program: the main file, its imports and `use std.*` modules, merged into one Program.

Imports resolve relative to the importing file, recursively; a cycle or a missing file is reported
at the import line (BMAD-E050..E059). The merged program gets the standard catalog
(`stdlib/models.bmad`) when it declares no models, and always the embedded `local` model unless the
author declared a model of that name. Standard-library files carry the display path `<std>/NAME.bmad`
so that spans and snapshots do not depend on where bmad is installed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Callable

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic, Related, error
from bmad.compiler.lower import FileUnit, lower_tree
from bmad.compiler.parse import ParseResult, encoding_diagnostics, parse_text
from bmad.compiler.stream_lower import lower_while_parsing

STDLIB_PREFIX = "<std>/"
CATALOG = "models"
LOCAL = "local"


def stdlib_display_path(module: str) -> str:
    return f"{STDLIB_PREFIX}{module}.bmad"


def stdlib_file(display_path: str) -> str | None:
    """The installed file behind a `<std>/NAME.bmad` display path (for editors), if it exists."""
    if not display_path.startswith(STDLIB_PREFIX):
        return None
    resource = resources.files("bmad.stdlib").joinpath(display_path[len(STDLIB_PREFIX):])
    return str(resource) if resource.is_file() else None


def read_stdlib(module: str) -> bytes | None:
    if not module or not all(part.isidentifier() for part in module.split(".")):
        return None
    resource = resources.files("bmad.stdlib").joinpath(f"{module.replace('.', '/')}.bmad")
    try:
        return resource.read_bytes() if resource.is_file() else None
    except OSError:
        return None


@dataclass
class LoadedFile:
    display: str  # the path used in spans
    key: str  # identity for cycle detection: the real path, or the `<std>/...` display path
    role: str
    data: bytes
    text: str = ""
    unit: FileUnit | None = None
    parsed_cleanly: bool = True


@dataclass
class LoadResult:
    program: ir.Program | None
    diagnostics: list[Diagnostic]
    sources: dict[str, str]
    complete: bool  # every file parsed cleanly and every import resolved (checks can trust it)


@dataclass
class FileFrontEnd:
    """One file through the front end (parse, then lower): what the loader needs of it."""

    text: str  # decoded
    syntax_diagnostics: list[Diagnostic]
    lowering_diagnostics: list[Diagnostic]  # those not already explained by a syntax error
    parsed_cleanly: bool
    parsed: bool  # a tree came out of the parser (possibly partial)
    unit: FileUnit | None


def lower_parsed(parsed: ParseResult, base_dir: str | None) -> FileFrontEnd:
    """Lower a parse result the way the loader always has (a whole file at once)."""
    unit, lowering = None, []
    if parsed.tree is not None:
        unit, found = lower_tree(parsed.tree, parsed.source_map, base_dir)
        # a syntax error already explains anything lowering finds inside its span or on its line
        # (the parser skipped words there: `retry backoff exponential 1s` is not `retry 1s`)
        covered = [(d.span.start, d.span.end) for d in parsed.diagnostics]
        lines = {d.span.line for d in parsed.diagnostics}
        lowering = [d for d in found if d.span.line not in lines
                    and not any(s <= d.span.start < max(e, s + 1) for s, e in covered)]
    return FileFrontEnd(parsed.text, list(parsed.diagnostics), lowering, parsed.complete,
                        parsed.tree is not None, unit)


def read_file(display: str, data: bytes | str, base_dir: str | None, role: str) -> FileFrontEnd:
    """Parse and lower one file (the default front end; the language server passes a caching one).

    A file that parses cleanly is lowered while it is parsed (`compiler/stream_lower.py`: the same
    IR and diagnostics, without building and walking a tree); anything else takes the tree path,
    which recovers from syntax errors and reports them.
    """
    streamed = lower_while_parsing(data, display, base_dir)
    if streamed is not None:
        text, unit, lowering = streamed
        return FileFrontEnd(text, [], lowering, True, True, unit)
    return lower_parsed(parse_text(data, display), base_dir)


FrontEnd = Callable[[str, "bytes | str", "str | None", str], FileFrontEnd]


@cache
def _stdlib_unit(module: str) -> tuple[FileUnit | None, bytes, str]:
    """Parse and lower a stdlib module once per process (IR nodes are immutable, so sharing is safe)."""
    data = read_stdlib(module) or b""
    display = stdlib_display_path(module)
    streamed = lower_while_parsing(data, display, None)
    if streamed is not None:
        return streamed[1], data, streamed[0]
    parsed = parse_text(data, display)
    unit = lower_tree(parsed.tree, parsed.source_map)[0] if parsed.tree is not None else None
    return unit, data, parsed.text


class Loader:
    """Loads files depth-first, dependencies before the files that import them."""

    def __init__(self, extra_sources: dict[str, str] | None = None, front_end: FrontEnd | None = None):
        self.front_end = front_end or read_file
        self.extra_sources = {os.path.abspath(k): v for k, v in (extra_sources or {}).items()
                              if not k.startswith("<")}
        self.extra_sources.update({k: v for k, v in (extra_sources or {}).items() if k.startswith("<")})
        self.files: list[LoadedFile] = []
        self.loaded: set[str] = set()
        self.diagnostics: list[Diagnostic] = []
        self.complete = True

    # -- reading ---------------------------------------------------------------------------

    def read(self, path: str) -> bytes | str:
        key = path if path.startswith("<") else os.path.abspath(path)
        if key in self.extra_sources:
            return self.extra_sources[key]
        with open(path, "rb") as handle:
            return handle.read()

    def load_main(self, display: str, data: bytes | str | None = None) -> None:
        if data is None:
            try:
                data = self.read(display)
            except OSError as e:
                span = ir.Span(display, 1, 1, 1, 1, 0, 0)
                self.diagnostics.append(error("BMAD-E053", span, f"cannot read `{display}`: {e.strerror or e}",
                                              "check the path and the file's permissions"))
                self.complete = False
                return
        key = display if display.startswith("<") else os.path.realpath(display)
        self._load(display, key, data, "main", [])

    def _load(self, display: str, key: str, data: bytes | str, role: str, stack: list[str]) -> None:
        self.loaded.add(key)
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        loaded = LoadedFile(display, key, role, raw)
        base_dir = None if display.startswith("<") else os.path.dirname(os.path.abspath(display))
        front = self.front_end(display, data, base_dir, role)
        loaded.text = front.text
        self.diagnostics.extend(front.syntax_diagnostics)
        self.diagnostics.extend(encoding_diagnostics(data, display))
        if not front.parsed_cleanly:
            loaded.parsed_cleanly = False
            self.complete = False
        if front.parsed:
            self.diagnostics.extend(front.lowering_diagnostics)
            loaded.unit = front.unit
            if front.unit is None:
                self.complete = False
        else:
            self.complete = False
        if loaded.unit is not None:
            self._resolve_imports(loaded, stack + [key])
        self.files.append(loaded)

    # -- imports ---------------------------------------------------------------------------

    def _resolve_imports(self, loaded: LoadedFile, stack: list[str]) -> None:
        unit = loaded.unit
        assert unit is not None
        resolved_imports = []
        for imp in unit.imports:
            resolved_imports.append(self._import(loaded, imp, stack))
        unit.imports = resolved_imports
        resolved_uses = []
        for use in unit.uses:
            resolved_uses.append(self._use(use, stack))
        unit.uses = resolved_uses

    def _import(self, importer: LoadedFile, imp: ir.Import, stack: list[str]) -> ir.Import:
        written = imp.path
        if importer.display.startswith("<") and importer.role == "stdlib":
            base = None
        elif importer.display.startswith("<"):
            base = os.getcwd()
        else:
            base = os.path.dirname(importer.display)
        if base is None:
            self._fail(imp.span, "BMAD-E054", f"the standard library cannot import `{written}`",
                       "standard-library modules use `use std.NAME`")
            return imp
        display = os.path.normpath(os.path.join(base, written)) if not os.path.isabs(written) else written
        if not written.endswith(".bmad"):
            self._fail(imp.span, "BMAD-E054", f"`import` loads .bmad files, not `{written}`",
                       "YAML workflows are compiled on their own: `bmad check file.yaml`")
            return imp
        if "\0" in written:  # the OS can't name such a file (os.path raises on it)
            shown = written.replace("\0", "\\0")
            self._fail(imp.span, "BMAD-E050", f"cannot find `{shown}`: a path can't contain a NUL "
                       "character", "imports are relative to the importing file")
            return imp
        key = os.path.realpath(display)
        absolute = os.path.abspath(display)
        if key in stack:
            chain = [self._display_of(k) for k in stack[stack.index(key):]] + [display]
            self._fail(imp.span, "BMAD-E051", f"import cycle: {' -> '.join(chain)}",
                       "move the shared declarations into a file that both import")
            return ir.replace(imp, resolved=absolute)
        if key in self.loaded:
            return ir.replace(imp, resolved=absolute)
        from bmad.compiler.limits import CODES, current_limits

        max_depth = current_limits().import_depth
        if len(stack) >= max_depth:  # each level is a Python frame: refuse before the stack runs out
            self._fail(imp.span, CODES["import_depth"],
                       f"imports are chained more than {max_depth} files deep here",
                       "import the shared files from one place instead of through a long chain "
                       "(or raise `import_depth` in bmad.toml's [limits])")
            return imp
        try:
            data = self.read(display)
        except FileNotFoundError:
            self._fail(imp.span, "BMAD-E050", f"cannot find `{written}` (looked for {display})",
                       "imports are relative to the importing file")
            return imp
        except OSError as e:
            self._fail(imp.span, "BMAD-E053", f"cannot read `{written}`: {e.strerror or e}",
                       "check the path and the file's permissions")
            return imp
        self._load(display, key, data, "import", stack)
        return ir.replace(imp, resolved=absolute)

    def _use(self, use: ir.Use, stack: list[str]) -> ir.Use:
        display = stdlib_display_path(use.module)
        if display in stack:
            return ir.replace(use, resolved=display)
        if display in self.loaded:
            return ir.replace(use, resolved=display)
        key = display
        if key in self.extra_sources:
            data: bytes | str | None = self.extra_sources[key]
        else:
            data = read_stdlib(use.module)
        if data is None:
            available = sorted(p.name[:-5] for p in resources.files("bmad.stdlib").iterdir()
                               if p.name.endswith(".bmad"))
            self._fail(use.span, "BMAD-E052", f"the standard library has no module `{use.module}`",
                       f"available: {', '.join('std.' + a for a in available)}" if available else None)
            return use
        self._load(display, key, data, "stdlib", stack)
        return ir.replace(use, resolved=display)

    def _display_of(self, key: str) -> str:
        for f in self.files:
            if f.key == key:
                return f.display
        return os.path.relpath(key) if not key.startswith("<") else key

    def _fail(self, span: ir.Span, code: str, message: str, hint: str | None) -> None:
        self.diagnostics.append(error(code, span, message, hint))
        self.complete = False

    # -- merging ---------------------------------------------------------------------------

    def program(self, main_display: str) -> ir.Program | None:
        units = [(f, f.unit) for f in self.files if f.unit is not None]
        if not units:
            return None
        order = {"main": 0, "import": 1, "stdlib": 2}  # main first; then in load order
        files = [ir.SourceFile(f.display, hashlib.sha256(f.data).hexdigest(), f.role)
                 for f in sorted(self.files, key=lambda f: order.get(f.role, 3))]
        providers, models, workflows = self._merge_stdlib(units)
        workflows = self._resolve_rubrics(units, workflows)
        imports = [i for _, u in units for i in u.imports]
        uses = [u_ for _, u in units for u_ in u.uses]
        main = next((u for f, u in units if f.role == "main"), None)
        entry = main.workflows[-1].name if main is not None and main.workflows else None
        files, providers, models = add_catalog(files, providers, models)
        return ir.Program(files=tuple(files), imports=tuple(imports), uses=tuple(uses),
                          providers=tuple(providers), models=tuple(models),
                          workflows=tuple(workflows), entry=entry)

    def _merge_stdlib(self, units: list[tuple[LoadedFile, FileUnit]]
                      ) -> tuple[list[ir.Provider], list[ir.Model], list[ir.Workflow]]:
        """Declarations of every file; the user's own win over the standard library's.

        A model or provider the user's files declare replaces the stdlib's of that name (and an
        alias the user claims is taken from the stdlib model that had it), so `use std.models`
        plus your own `model gpt-4o {...}` or `provider openai {...}` is an override, not a clash.
        A workflow of the same name as one a `use std.NAME` brings in is an error (BMAD-E056):
        calls would be ambiguous, and a pattern is not meant to be silently replaced.
        """
        user = [u for f, u in units if f.role != "stdlib"]
        user_models = {m.name for u in user for m in u.models}
        user_model_names = user_models | {a for u in user for m in u.models for a in m.aliases}
        user_providers = {p.name for u in user for p in u.providers}
        user_workflows = {w.name: w for u in user for w in u.workflows}
        providers: list[ir.Provider] = []
        models: list[ir.Model] = []
        workflows: list[ir.Workflow] = []
        for f, u in units:
            if f.role != "stdlib":
                providers.extend(u.providers)
                models.extend(u.models)
                workflows.extend(u.workflows)
                continue
            providers.extend(p for p in u.providers if p.name not in user_providers)
            for m in u.models:
                if m.name in user_model_names:
                    continue
                kept = tuple(a for a in m.aliases if a not in user_model_names)
                models.append(m if kept == m.aliases else ir.replace(m, aliases=kept))
            for w in u.workflows:
                mine = user_workflows.get(w.name)
                if mine is None:
                    workflows.append(w)
                    continue
                module = f.display[len(STDLIB_PREFIX):-len(".bmad")]
                self.diagnostics.append(error(
                    "BMAD-E056", mine.name_span,
                    f"workflow `{w.name}` has the same name as the pattern `use std.{module}` brings in",
                    f"rename yours (e.g. `my_{w.name}`), or remove `use std.{module}` to use only yours",
                    [Related(w.name_span, f"std.{module} declares `{w.name}` here")]))
        return providers, models, workflows

    def _resolve_rubrics(self, units: list[tuple[LoadedFile, FileUnit]],
                         workflows: list[ir.Workflow]) -> list[ir.Workflow]:
        """`rubric NAME` in quality clauses gets the text of the rubric of that name (compiler/rubrics.py)."""
        from bmad.compiler.rubrics import declared_rubrics, resolve_rubrics, unknown_rubrics

        if not any(u.rubrics or u.rubric_refs for _, u in units):
            return workflows
        rubrics, problems = declared_rubrics((f.role, u) for f, u in units)
        problems += unknown_rubrics((r for _, u in units for r in u.rubric_refs), rubrics)
        self.diagnostics.extend(problems)
        return resolve_rubrics(workflows, rubrics)

    def sources(self) -> dict[str, str]:
        return {f.display: f.text for f in self.files}


def add_catalog(files: list[ir.SourceFile], providers: list[ir.Provider], models: list[ir.Model]
                ) -> tuple[list[ir.SourceFile], list[ir.Provider], list[ir.Model]]:
    """The standard catalog when no model is declared; the embedded `local` model unless declared.

    Also used for the YAML front end's programs, so both front ends see the same models.
    """
    unit, data, _ = _stdlib_unit(CATALOG)
    if unit is None:
        return files, providers, models
    display = stdlib_display_path(CATALOG)
    declared_providers = {p.name for p in providers}
    declared_models = {m.name for m in models}
    added_providers: list[ir.Provider] = []
    added_models: list[ir.Model] = []
    if not models:
        added_models = [m for m in unit.models]
        needed = {m.provider.name for m in added_models}
        added_providers = [p for p in unit.providers if p.name in needed or p.name == LOCAL]
    elif LOCAL not in declared_models:
        added_models = [m for m in unit.models if m.name == LOCAL]
        added_providers = [p for p in unit.providers if p.name == LOCAL]
    added_providers = [p for p in added_providers if p.name not in declared_providers]
    added_models = [m for m in added_models if m.name not in declared_models]
    if not added_models and not added_providers:
        return files, providers, models
    if not any(f.path == display for f in files):
        files = files + [ir.SourceFile(display, hashlib.sha256(data).hexdigest(), "stdlib")]
    return files, providers + added_providers, models + added_models


def stdlib_unit(module: str) -> FileUnit | None:
    """The lowered declarations of `stdlib/MODULE.bmad`, or None when there is no such module."""
    if read_stdlib(module) is None:
        return None
    return _stdlib_unit(module)[0]


def add_pattern_workflows(program: ir.Program) -> tuple[ir.Program, dict[str, str]]:
    """Add the stdlib patterns that tasks call but the program does not declare (the seed's YAML
    `task_type`, see compiler/patterns.py); returns the program and the added files' texts."""
    declared = {w.name for w in program.workflows}
    called = [t.call.workflow.name for w in program.workflows for t in w.tasks if t.call is not None]
    files, workflows, sources = list(program.files), list(program.workflows), {}
    for module in dict.fromkeys(called):
        unit = stdlib_unit(module) if module not in declared else None
        if unit is None:
            continue
        _, data, text = _stdlib_unit(module)
        display = stdlib_display_path(module)
        workflows.extend(_with_rubrics(unit, [w for w in unit.workflows if w.name not in declared]))
        declared.update(w.name for w in unit.workflows)
        files.append(ir.SourceFile(display, hashlib.sha256(data).hexdigest(), "stdlib"))
        sources[display] = text
    if not sources:
        return program, {}
    from bmad.compiler.patterns import read_primary_outputs

    program = ir.replace(program, files=tuple(files), workflows=tuple(workflows))
    return read_primary_outputs(program), sources


def _with_rubrics(unit: FileUnit, workflows: list[ir.Workflow]) -> list[ir.Workflow]:
    """A pattern's workflows with its named rubrics resolved (its own and those of the modules it uses)."""
    if not unit.rubric_refs:
        return workflows
    from bmad.compiler.rubrics import declared_rubrics, resolve_rubrics

    used = [stdlib_unit(u.module) for u in unit.uses]
    rubrics, _ = declared_rubrics([("stdlib", unit)] + [("stdlib", u) for u in used if u is not None])
    return resolve_rubrics(workflows, rubrics)


def catalog_source() -> tuple[str, str]:
    """(display path, text) of the standard catalog, for rendering diagnostics that point into it."""
    return stdlib_display_path(CATALOG), _stdlib_unit(CATALOG)[2]


def load_program(display: str, data: bytes | str | None = None,
                 extra_sources: dict[str, str] | None = None, front_end: FrontEnd | None = None
                 ) -> LoadResult:
    loader = Loader(extra_sources, front_end)
    loader.load_main(display, data)
    program = loader.program(display)
    sources = loader.sources()
    if program is not None and any(f.path == stdlib_display_path(CATALOG) for f in program.files):
        path, text = catalog_source()
        sources.setdefault(path, text)
    return LoadResult(program, loader.diagnostics, sources, loader.complete)
