"""`bmad models` lists the model catalog; `bmad doctor` checks each provider can be reached and used.

`bmad models [FILE]` shows every model a workflow can use (the standard catalog when no FILE is
given, or when the file declares no models): provider, prices, context, skills, and whether it is
available here (key set, extra installed, data present). `bmad doctor [FILE]` asks each declared
provider, without spending tokens where the API allows (it lists models: `GET /models`,
`/v1/models`, `/v1beta/models`, `/api/tags`), whether it is reachable and accepts our key, and
whether the catalog's model ids are among what it serves.
Exit status: models 0 (1 when FILE has errors); doctor 0 when nothing configured is broken, 1 when
a provider is unreachable or rejects its key (a provider with no key set is reported, not failed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from bmad.cli.common import (EXIT_ERRORS, EXIT_OK, EXIT_USAGE, OutputFormat, examples, exit_code,
                             file_problem, print_diagnostics)

MODELS_HELP = "List the model catalog: prices, context, skills and availability."
DOCTOR_HELP = ("Check each provider's reachability and key without spending tokens "
               "(lists its models).")
E_CONFIG = "BMAD-E400"  # bmad.toml can't be read or holds a key

MODELS_EPILOG = examples(
    ("bmad models", "the standard catalog"),
    ("bmad models examples/review.bmad", "the models a workflow declares (or the standard ones)"),
    ("bmad models --format json", "the catalog as JSON on stdout"),
    ("bmad models --prices model_prices_and_context_window.json", "load newer prices (LiteLLM's map)"),
)
DOCTOR_EPILOG = examples(
    ("bmad doctor", "check the standard catalog's providers"),
    ("bmad doctor pipeline.bmad --timeout 5", "check a workflow's providers, 5 s each"),
    ("bmad doctor --format json", "one JSON object per provider"),
)


def _load_program(file: str | None, output: OutputFormat):
    """The program whose catalog to show: FILE's, or the standard catalog's. None after errors."""
    from bmad.compiler.compile import compile_file

    if file is None:
        path = str(Path(__file__).resolve().parent.parent / "stdlib" / "models.bmad")
    else:
        problem = file_problem(file)
        if problem is not None:
            print_diagnostics([problem], {}, output)
            raise typer.Exit(exit_code([problem], usage_error=True))
        path = file
    result = compile_file(path)
    if result.program is None or not result.ok:
        from bmad.cli.check_cmd import config_refused

        print_diagnostics(result.diagnostics, result.sources, output)
        # bmad.toml holds a key (BMAD-E400): refused with 2, as `--config` such a file is
        raise typer.Exit(EXIT_USAGE if config_refused(result.diagnostics) else EXIT_ERRORS)
    return result.program


def _money(value: float | None) -> str:
    from bmad.compiler.money import format_usd

    return format_usd(value)


def _tokens(value: int | None) -> str:
    if value is None:
        return "?"
    return f"{value // 1000}k" if value >= 1000 and value % 1000 == 0 else str(value)


def models_rows(program: Any) -> list[dict[str, Any]]:
    from bmad.compiler.catalog import build_catalog

    catalog = build_catalog(program)
    rows = []
    for entry in catalog:
        rows.append({
            "name": entry.name, "provider": entry.provider, "kind": entry.provider_kind,
            "model_id": entry.model_id,
            "price_input_per_m": entry.price_input_per_m,
            "price_output_per_m": entry.price_output_per_m,
            "context": entry.context, "skills": dict(sorted(entry.skills.items())),
            "latency_base_s": entry.latency_base_s,
            "latency_per_token_s": entry.latency_per_token_s,
            "available": entry.available, "unavailable_reason": entry.unavailable_reason,
        })
    return rows


def _config_or_exit(config: str | None):
    from bmad.runtime.providers.keys import KeyConfig, KeyConfigError

    try:
        return KeyConfig.load(config)
    except KeyConfigError as exc:
        typer.echo(f"error[{E_CONFIG}]: {exc}", err=True)
        typer.echo("  = help: bmad.toml names environment variables "
                   "(`[providers.NAME] api_key_env = \"VAR\"`); keys never go in files", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    @app.command("models", help=MODELS_HELP, epilog=MODELS_EPILOG)
    def models(
        file: str = typer.Argument(None, metavar="[FILE]",
                                   help="A workflow whose models to list (default: the standard "
                                        "catalog)."),
        output: OutputFormat = typer.Option(OutputFormat.text, "--format",
                                            help="text (a table) or json."),
        prices: str = typer.Option(None, "--prices", metavar="FILE",
                                   help="Load prices and context windows from a LiteLLM "
                                        "model_prices_and_context_window.json into the user-level "
                                        "override (plans then use and name it)."),
    ) -> None:
        if prices is not None:
            from bmad.cli.prices_option import load_price_file

            load_price_file(prices)
        program = _load_program(file, output)
        rows = models_rows(program)
        if output is OutputFormat.json:
            sys.stdout.write(json.dumps({"models": rows}, indent=2, sort_keys=True) + "\n")
            raise typer.Exit(EXIT_OK)
        typer.echo("Models (prices in USD per 1M tokens, input / output)")
        width = max((len(r["name"]) for r in rows), default=5)
        for r in rows:
            available = "available" if r["available"] else f"unavailable: {r['unavailable_reason']}"
            typer.echo(f"  {r['name']:<{width}}  {r['provider']} ({r['kind']}), "
                       f"{_money(r['price_input_per_m'])} / {_money(r['price_output_per_m'])}, "
                       f"context {_tokens(r['context'])}, {available}")
            skills = ", ".join(f"{k} {v:.2f}" for k, v in r["skills"].items())
            if skills:
                typer.echo(f"  {'':<{width}}  skills: {skills}")
        if any(r["price_input_per_m"] is None for r in rows):
            typer.echo("note: a model without a price is costed as unknown, never $0; runs with a "
                       "dollar budget refuse it.")

    @app.command("doctor", help=DOCTOR_HELP, epilog=DOCTOR_EPILOG)
    def doctor(
        file: str = typer.Argument(None, metavar="[FILE]",
                                   help="A workflow whose providers to check (default: the "
                                        "standard catalog)."),
        timeout: float = typer.Option(10.0, "--timeout", min=0.1,
                                      help="Seconds to wait for each provider."),
        config: str = typer.Option(None, "--config",
                                   help="A bmad.toml naming key variables (default: ./bmad.toml)."),
        output: OutputFormat = typer.Option(OutputFormat.text, "--format",
                                            help="text or json."),
    ) -> None:
        program = _load_program(file, output)
        key_config = _config_or_exit(config)
        reports = run_checks(program, key_config, timeout)
        if output is OutputFormat.json:
            sys.stdout.write(json.dumps({"providers": reports}, indent=2, sort_keys=True) + "\n")
        else:
            for r in reports:
                mark = {"ok": "ok  ", "no_key": "skip", "unavailable": "skip"}.get(r["status"],
                                                                                  "FAIL")
                typer.echo(f"{mark} {r['provider']} ({r['kind']}): {r['status']}"
                           + (f" - {r['detail']}" if r["detail"] else ""))
                for note in r.get("model_notes", []):
                    typer.echo(f"       {note}")
        broken = [r for r in reports if r["status"] in ("auth", "error", "unreachable")]
        raise typer.Exit(EXIT_ERRORS if broken else EXIT_OK)


def run_checks(program: Any, key_config: Any, timeout: float) -> list[dict[str, Any]]:
    """One health report (as JSON) per declared provider, checked concurrently."""
    import anyio

    from bmad.runtime.providers import base, keys
    from bmad.runtime.providers.health import HealthReport
    from bmad.runtime.providers.registry import ProviderOptions, build_provider

    options = ProviderOptions(models=program.models, config=key_config,
                              connect_timeout_s=timeout, read_timeout_s=timeout)
    results: dict[str, HealthReport] = {}

    async def check_one(decl: Any) -> None:
        try:
            provider = build_provider(decl, options=options)
        except base.Misconfigured as exc:  # to fix, not a provider merely not set up here
            results[decl.name] = HealthReport(decl.name, decl.kind, "error", exc.message)
            return
        except base.Unavailable as exc:
            results[decl.name] = HealthReport(decl.name, decl.kind, "unavailable", exc.message)
            return
        try:
            with anyio.fail_after(timeout + 1):
                results[decl.name] = await provider.check()
        except TimeoutError:
            results[decl.name] = HealthReport(decl.name, decl.kind, "unreachable",
                                              f"no answer within {timeout:g}s")
        except base.ProviderError as exc:
            results[decl.name] = HealthReport(decl.name, decl.kind, "error", exc.message)
        finally:
            await provider.aclose()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for decl in program.providers:
                tg.start_soon(check_one, decl)

    anyio.run(main)
    out = []
    for decl in program.providers:
        report = results[decl.name].to_json()
        report["detail"] = keys.redact(str(report["detail"]))
        listed = results[decl.name].models
        notes = []
        if listed is not None and decl.kind not in ("llama_cpp", "sim"):
            for m in program.models:
                if m.provider.name == decl.name and (m.id or m.name) not in listed:
                    notes.append(f"model {m.name}: id {m.id or m.name!r} is not in the "
                                 "provider's list")
        report["model_notes"] = notes
        out.append(report)
    return out
