"""Project scaffolds from the standard library's patterns: what `bmad new` (and the seed's
`bmad workflow create`) write.

A template is a stdlib pattern (`code-review` is `std.code_review`). Scaffolding writes a folder
with `workflow.bmad` (a workflow whose inputs mirror the pattern's and that calls it), `models.bmad`
(editable providers and models), `bmad.toml` (the environment variables holding the keys) and a
`README.md`, from the files in `stdlib/templates/`. `values` give inputs defaults (the seed's
`--customize` answers); `name` names the workflow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

TEMPLATE_FILES = ("workflow.bmad", "models.bmad", "bmad.toml", "README.md")
DEFAULT_BUDGET = "6.00"  # covers the worst case of every template (the largest: ~$5.14), so a new project checks clean
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ScaffoldError(Exception):
    """A template that does not exist, a folder that is not empty, a bad value (message says which)."""


@dataclass(frozen=True, slots=True)
class TemplateInput:
    name: str
    type: str  # as written in bmad: text, number, list<text>, ...
    default: str | None  # bmad source text of the default, None when required


@dataclass(frozen=True, slots=True)
class Template:
    name: str  # kebab-case: code-review
    pattern: str  # the stdlib module and workflow: code_review
    about: str
    inputs: tuple[TemplateInput, ...]
    outputs: tuple[str, ...]


def _pattern_modules() -> list[str]:
    skip = {"models", "ollama", "quality", "consensus"}  # catalogs and rubric libraries, not patterns
    return sorted(p.name[:-5] for p in resources.files("bmad.stdlib").iterdir()
                  if p.name.endswith(".bmad") and p.name[:-5] not in skip)


def template_name(pattern: str) -> str:
    return pattern.replace("_", "-")


def _source_text(expr: Any) -> str:
    """bmad source for a default value (the IR of a literal, or a plain Python value)."""
    from bmad.compiler import ir

    if isinstance(expr, ir.Literal):
        return _source_text(expr.value)
    if isinstance(expr, ir.ListExpr):
        return "[" + ", ".join(_source_text(i) for i in expr.items) + "]"
    if isinstance(expr, str):
        text = json.dumps(expr, ensure_ascii=False)
        return re.sub(r"\\[bf]", " ", text).replace("{{", "\\{\\{")
    if isinstance(expr, bool):
        return "true" if expr else "false"
    if expr is None:
        return "null"
    if isinstance(expr, (int, float)):
        return repr(expr)
    if isinstance(expr, (list, tuple)):
        return "[" + ", ".join(_source_text(i) for i in expr) + "]"
    return _source_text(json.dumps(expr, ensure_ascii=False, sort_keys=True))


def list_templates() -> list[Template]:
    """Every pattern of the standard library, as a template."""
    from bmad.compiler.load import stdlib_unit

    found = []
    for module in _pattern_modules():
        unit = stdlib_unit(module)
        workflow = next((w for w in (unit.workflows if unit else ()) if w.name == module), None)
        if workflow is None:
            continue
        inputs = tuple(TemplateInput(i.name, str(i.type), None if i.default is None else _source_text(i.default))
                       for i in workflow.inputs)
        found.append(Template(template_name(module), module, workflow.about or "",
                              inputs, tuple(o.name for o in workflow.outputs)))
    return found


def normal_template_name(name: str) -> str:
    """`code-review`, `code_review`, `Code Review` and `std.code_review` name one template."""
    return re.sub(r"[^a-z0-9]+", "-", name.strip().lower().removeprefix("std.")).strip("-")


def find_template(name: str) -> Template:
    wanted = normal_template_name(name)
    templates = {t.name: t for t in list_templates()}
    if wanted in templates:
        return templates[wanted]
    import difflib

    close = difflib.get_close_matches(wanted, templates, n=1, cutoff=0.5)
    hint = f"did you mean `{close[0]}`? " if close else ""
    raise ScaffoldError(f"there is no template `{name}`; {hint}`bmad new --list` shows them all")


def value_text(template: Template, name: str, value: str) -> str:
    """bmad source for a value given to one of the template's inputs (ScaffoldError if it can't be)."""
    declared = next((i for i in template.inputs if i.name == name), None)
    if declared is None:
        known = ", ".join(i.name for i in template.inputs)
        raise ScaffoldError(f"std.{template.pattern} has no input `{name}` (its inputs: {known})")
    if declared.type.startswith("list"):
        from bmad.runtime.inputs import JsonTooDeep, load_json

        try:
            items = load_json(value)
        except JsonTooDeep as exc:
            raise ScaffoldError(f"`{name}`: {exc}") from None
        except ValueError:
            items = [line for line in value.splitlines() if line.strip()]
        if not isinstance(items, list):
            raise ScaffoldError(f"`{name}` is a list: give a JSON list or one item per line")
        return _source_text([str(i) if not isinstance(i, str) else i for i in items])
    return _source_text(value)


def _read_template_file(name: str) -> str:
    return resources.files("bmad.stdlib").joinpath("templates", name).read_text(encoding="utf-8")


def default_workflow_name(template: Template) -> str:
    return f"my_{template.pattern}"


def check_workflow_name(template: Template, name: str) -> str:
    """The name, if it can name the scaffold's workflow (ScaffoldError says why not)."""
    if not _IDENTIFIER.fullmatch(name) or name == template.pattern:
        raise ScaffoldError(f"`{name}` can't name the workflow: use letters, digits and `_`, "
                            f"and not the pattern's own name `{template.pattern}`")
    return name


def render_files(template: Template, *, name: str | None = None,
                 values: Mapping[str, str] | None = None, budget: str = DEFAULT_BUDGET) -> dict[str, str]:
    """The scaffold's files (name -> text), without writing anything."""
    workflow_name = check_workflow_name(template, name or default_workflow_name(template))
    values = dict(values or {})
    defaults = {k: value_text(template, k, v) for k, v in values.items()}
    lines, arguments, table, run_inputs = [], [], [], []
    for i in template.inputs:
        default = defaults.get(i.name, i.default)
        lines.append(f"  input {i.name}: {i.type}" + (f" = {default}" if default is not None else ""))
        arguments.append(f"{i.name}: {i.name}")
        table.append(f"| `{i.name}` | {i.type} | {'required' if default is None else f'default `{default}`'} |")
        if default is None:
            run_inputs.append(f"--input {i.name}=@{i.name}.txt")
    call = ", ".join(arguments)
    if len(f"  task result = {template.pattern}({call})") > 100:
        call = "\n" + ",\n".join(f"    {a}" for a in arguments) + ",\n  "
    title = template.pattern.replace("_", " ").capitalize()
    replacements = {
        "@@TITLE@@": title, "@@ABOUT@@": template.about.replace('"', "'"), "@@TEMPLATE@@": template.name,
        "@@PATTERN@@": template.pattern, "@@NAME@@": workflow_name, "@@BUDGET@@": budget,
        "@@INPUTS@@": "\n".join(lines), "@@ARGUMENTS@@": call,
        "@@INPUT_TABLE@@": "| input | type | |\n| --- | --- | --- |\n" + "\n".join(table),
        "@@RUN_INPUTS@@": " ".join(run_inputs),
    }
    files = {}
    for file_name in TEMPLATE_FILES:
        text = _read_template_file(file_name)
        for key, value in replacements.items():
            text = text.replace(key, value)
        files[file_name] = text
    return files


def scaffold(template_name_: str, directory: str | Path, *, name: str | None = None,
             values: Mapping[str, str] | None = None, force: bool = False,
             budget: str = DEFAULT_BUDGET) -> list[Path]:
    """Write the scaffold into `directory` (created; refused when it holds files, unless `force`)."""
    template = find_template(template_name_)
    files = render_files(template, name=name, values=values, budget=budget)
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ScaffoldError(f"{target} is not empty; choose a new folder (or pass --force to overwrite "
                            f"{', '.join(TEMPLATE_FILES)})")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in files.items():
        path = target / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


__all__ = ["ScaffoldError", "Template", "TemplateInput", "check_workflow_name", "default_workflow_name",
           "find_template", "list_templates", "normal_template_name", "render_files", "scaffold",
           "template_name", "value_text"]
