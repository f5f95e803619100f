"""`bmad schema NAME`: print one of the JSON Schemas shipped in `bmad.compiler.schema`.

The set is discovered from the package data (`compiler/schema/NAME.vN.json`), so a new schema file
is a new `bmad schema NAME` without touching this module; the highest version is printed unless
`--version N` asks for another.
"""

from __future__ import annotations

import re
import sys
from importlib import resources

import typer

from bmad.cli.common import examples, fail_usage

_SCHEMA_FILE = re.compile(r"(?P<name>[a-z][a-z0-9_-]*)\.v(?P<version>\d+)\.json")

HELP = """Print a JSON Schema of bmad's file formats (draft 2020-12) on stdout.

`ir` is the compiled program (`bmad plan --format json` embeds it); `plan` is the sealed plan.
Run without a name to list the schemas this installation ships.
"""

EPILOG = examples(
    ("bmad schema", "list the available schemas and their versions"),
    ("bmad schema ir > ir.schema.json", "save the IR schema, e.g. for an editor or a validator"),
    ("bmad schema plan", "print the plan schema"),
)


def available_schemas() -> dict[str, dict[int, str]]:
    """name -> {version: file name} for every schema file shipped in bmad.compiler.schema."""
    found: dict[str, dict[int, str]] = {}
    for entry in resources.files("bmad.compiler.schema").iterdir():
        match = _SCHEMA_FILE.fullmatch(entry.name)
        if match and entry.is_file():
            found.setdefault(match["name"], {})[int(match["version"])] = entry.name
    return dict(sorted(found.items()))


def read_schema(name: str, version: int | None = None) -> str | None:
    versions = available_schemas().get(name)
    if not versions:
        return None
    chosen = versions.get(version) if version is not None else versions[max(versions)]
    if chosen is None:
        return None
    return resources.files("bmad.compiler.schema").joinpath(chosen).read_text(encoding="utf-8")


def register(app: typer.Typer) -> None:
    @app.command("schema", help=HELP, epilog=EPILOG)
    def schema(
        name: str = typer.Argument(None, metavar="[NAME]", show_default=False,
                                   help="The schema to print: ir, plan, ... (omit to list them)."),
        version: int = typer.Option(None, "--version", "-v", min=1,
                                    help="A schema version other than the newest."),
    ) -> None:
        schemas = available_schemas()
        if name is None:
            for schema_name, versions in schemas.items():
                listed = ", ".join(f"v{v}" for v in sorted(versions))
                typer.echo(f"{schema_name}\t{listed}")
            return
        text = read_schema(name, version)
        if text is None:
            if name in schemas:
                listed = ", ".join(str(v) for v in sorted(schemas[name]))
                raise fail_usage(f"there is no version {version} of the `{name}` schema",
                                 f"versions shipped: {listed}")
            raise fail_usage(f"unknown schema `{name}`",
                             f"available: {', '.join(schemas) or 'none (the installation is incomplete)'}")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
