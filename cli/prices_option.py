"""`bmad models --prices FILE`: load a LiteLLM price map into the user-level price override."""

from __future__ import annotations

import typer

from bmad.cli.common import (EXIT_ERRORS, EXIT_USAGE, UserFileError, file_problem, print_diagnostics,
                             read_user_json)


def load_price_file(path: str) -> None:
    """Save FILE's prices as the user-level override and say which catalog models they reprice.

    Exit status 2 when FILE can't be opened (missing, a folder, no permission: a usage error, as
    for every command), 1 when what it holds isn't a LiteLLM price map (an error in the file)."""
    from bmad.compiler.load import CATALOG, stdlib_unit
    from bmad.compiler.prices import PriceFileError, read_litellm_prices, save_overrides

    problem = file_problem(path)  # missing, a folder, unreadable: as for any file named
    if problem is not None:
        print_diagnostics([problem], {})
        raise typer.Exit(EXIT_USAGE)
    try:
        read_user_json(path)  # read as every JSON a user gives is (too deep: a message)
        entries = read_litellm_prices(path)
    except (PriceFileError, UserFileError) as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo("  = help: pass a JSON object like LiteLLM's model_prices_and_context_window.json: "
                   '{"gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, '
                   '"max_input_tokens": 128000, "litellm_provider": "openai"}}', err=True)
        raise typer.Exit(EXIT_ERRORS) from None
    try:
        saved = save_overrides(path, entries)
    except OSError as exc:
        typer.echo(f"error: cannot write the price override: {exc.strerror or exc}", err=True)
        typer.echo("  = help: set BMAD_HOME to a writable folder", err=True)
        raise typer.Exit(EXIT_ERRORS) from None
    unit = stdlib_unit(CATALOG)
    matched = [m.name for m in (unit.models if unit else ()) if saved.lookup(m.id or m.name)]
    typer.echo(f"loaded {len(entries)} priced models from {saved.source} into {saved.path} "
               f"({saved.loaded_at}); {len(matched)} catalog models repriced"
               + (f": {', '.join(matched)}" if matched else ""), err=True)

