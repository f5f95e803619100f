"""The compile API: a file or a text in, a Program and sorted diagnostics out.

`.bmad` goes through parse -> lower -> load (imports, stdlib, the catalog); `.yaml`/`.yml` through
the seed-format front end. Semantic checks run last, when the program was read completely (checks
over a half-parsed program would only repeat the syntax errors in other words). Never raises for
bad input; the program is returned even when there are errors, if one could be built, so that the
language server can work with partial results.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass, field

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic, error, sort_diagnostics
from bmad.compiler.gc_pause import collection_paused  # a compile is a burst of long-lived objects
from bmad.compiler.load import add_catalog, add_pattern_workflows, catalog_source, load_program, stdlib_display_path, CATALOG
from bmad.compiler.load import FrontEnd
from bmad.compiler.parse import decode_source, encoding_diagnostics
from bmad.compiler.source_map import YAML_SUFFIXES


@dataclass
class CompileResult:
    program: ir.Program | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # file -> text, for rendering

    @property
    def ok(self) -> bool:
        return self.program is not None and not any(d.is_error for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]


@collection_paused()
def compile_file(path: str | os.PathLike, *, extra_sources: dict[str, str] | None = None
                 ) -> CompileResult:
    """Compile a .bmad or seed-format .yaml file from disk (`extra_sources` overrides file contents,
    keyed by path: the language server's unsaved buffers)."""
    display = os.fspath(path)
    if display.endswith(YAML_SUFFIXES):
        override = _lookup(extra_sources, display)
        if override is not None:
            return _compile_yaml(override, display)
        try:
            with open(display, "rb") as handle:
                data = handle.read()
        except OSError as e:
            return _unreadable(display, e)
        return _compile_yaml(data, display)
    loaded = load_program(display, _lookup(extra_sources, display), extra_sources)
    return _finish(loaded.program, loaded.diagnostics, loaded.sources, loaded.complete)


@collection_paused()
def compile_source(text: str | bytes, path: str = "<input>", *,
                   extra_sources: dict[str, str] | None = None,
                   front_end: FrontEnd | None = None) -> CompileResult:
    """Compile text as if it were the file `path` (imports resolve relative to it). `front_end`
    replaces how each .bmad file is parsed and lowered (`compiler/incremental.py` reuses work)."""
    if path.endswith(YAML_SUFFIXES):
        return _compile_yaml(text, path)
    loaded = load_program(path, text, extra_sources, front_end)
    return _finish(loaded.program, loaded.diagnostics, loaded.sources, loaded.complete)


def _lookup(extra_sources: dict[str, str] | None, path: str) -> str | None:
    if not extra_sources:
        return None
    if path in extra_sources:
        return extra_sources[path]
    absolute = os.path.abspath(path)
    for key, value in extra_sources.items():
        if not key.startswith("<") and os.path.abspath(key) == absolute:
            return value
    return None


def _unreadable(display: str, e: OSError) -> CompileResult:
    span = ir.Span(display, 1, 1, 1, 1, 0, 0)
    code = "BMAD-E050" if isinstance(e, FileNotFoundError) else "BMAD-E053"
    message = f"cannot find `{display}`" if code == "BMAD-E050" else f"cannot read `{display}`: {e.strerror or e}"
    return CompileResult(None, [error(code, span, message, "check the path")], {})


def _compile_yaml(data: str | bytes, display: str) -> CompileResult:
    text = decode_source(data)
    sources = {display: text}
    try:
        frontend = importlib.import_module("bmad.compiler.yaml_frontend")
    except ModuleNotFoundError as e:
        if e.name != "bmad.compiler.yaml_frontend":
            raise
        span = ir.Span(display, 1, 1, 1, 1, 0, 0)
        return CompileResult(None, [error("BMAD-E055", span, "the YAML front end is not available",
                                          "compile a .bmad file instead")], sources)
    from bmad.compiler.limits import yaml_limit_diagnostics

    refused = yaml_limit_diagnostics(text, display)
    if refused:  # too large or too deep to hand to the YAML composer
        return _finish(None, refused, sources, False)
    program, diagnostics = frontend.lower_yaml(text, display)
    diagnostics = encoding_diagnostics(data, display) + list(diagnostics)  # BMAD-W050
    if program is not None:
        files, providers, models = add_catalog(list(program.files), list(program.providers),
                                               list(program.models))
        if not program.files:
            sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
            files = [ir.SourceFile(display, sha, "main")] + files
        program = ir.replace(program, files=tuple(files), providers=tuple(providers),
                             models=tuple(models))
        program, pattern_sources = add_pattern_workflows(program)  # task_type naming a std pattern
        sources.update(pattern_sources)
        if any(f.path == stdlib_display_path(CATALOG) for f in program.files):
            path, catalog_text = catalog_source()
            sources.setdefault(path, catalog_text)
    complete = program is not None and not any(d.is_error for d in diagnostics)
    return _finish(program, diagnostics, sources, complete)


def _finish(program: ir.Program | None, diagnostics: list[Diagnostic], sources: dict[str, str],
            complete: bool) -> CompileResult:
    diagnostics = list(diagnostics)
    if program is not None:
        from bmad.compiler.prices import apply_price_overrides

        program = apply_price_overrides(program)  # `bmad models --prices FILE`, when loaded
    from bmad.compiler.limits import limits_config_diagnostics, program_limit_diagnostics

    over_limits = program_limit_diagnostics(program) if program is not None else []
    diagnostics.extend(over_limits + limits_config_diagnostics())
    if program is not None and complete and not over_limits:
        from bmad.compiler.checks import run_checks

        diagnostics.extend(run_checks(program))
    unique = list(dict.fromkeys(diagnostics))
    return CompileResult(program, sort_diagnostics(unique), sources)
