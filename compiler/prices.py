"""Price overrides: a LiteLLM price map loaded into a user-level file that updates the catalog.

Prices change faster than bmad releases. `bmad models --prices FILE` reads a JSON file in the format
of LiteLLM's `model_prices_and_context_window.json` (the de-facto price map: one entry per model
key, with `input_cost_per_token`, `output_cost_per_token`, `max_input_tokens` or `max_tokens`,
`litellm_provider`) and saves what it needs to the user-level override
(`$BMAD_HOME/prices.json`, else `$XDG_CONFIG_HOME/bmad/prices.json`, else
`~/.config/bmad/prices.json`), with where it came from and when.

When that file exists, compiling applies it to the standard catalog's models (and to any model the
user declared without a price): a model matches an entry by its provider model id (`id`), either as
the key itself (`gpt-4o`) or after a provider prefix (`anthropic/claude-sonnet-4-5`,
`together_ai/meta-llama/...`). The file joins the program's sources and the plan records it
(`Plan.prices`), so a plan sealed under other prices (another override, or none) is stale
(`verify_plan`: BMAD-E221), and the plan carries a note naming it ("prices from FILE, loaded DATE").
A model the user priced in their own file keeps the user's price.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from bmad.compiler import ir

OVERRIDE_FORMAT = "bmad-prices/1"
OVERRIDE_NAME = "prices.json"
PRICE_NOTE_CODE = "BMAD-I240"  # an informational plan note, not a diagnostic


class PriceFileError(Exception):
    """A price file that can't be read or isn't in LiteLLM's format (the message says why)."""


@dataclass(frozen=True, slots=True)
class PriceEntry:
    input_per_m: float
    output_per_m: float
    context: int | None
    provider: str | None


@dataclass(frozen=True, slots=True)
class PriceOverrides:
    path: str  # the user-level override file
    source: str  # the LiteLLM file it was loaded from
    loaded_at: str  # ISO 8601, UTC
    entries: Mapping[str, PriceEntry]

    def lookup(self, model_id: str) -> PriceEntry | None:
        """The entry for a provider model id: the key itself, or a `provider/` prefix before it."""
        if model_id in self.entries:
            return self.entries[model_id]
        for key in sorted(self.entries):
            if "/" in key and key.split("/", 1)[1] == model_id:
                return self.entries[key]
        return None


def override_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("BMAD_HOME"):
        return Path(env["BMAD_HOME"]) / OVERRIDE_NAME
    config = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return config / "bmad" / OVERRIDE_NAME


def _per_million(value: Any, what: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise PriceFileError(f"`{key}`: {what} must be a non-negative number, not {value!r}")
    return round(float(value) * 1_000_000, 6)


def read_litellm_prices(path: str | os.PathLike) -> dict[str, PriceEntry]:
    """The priced entries of a LiteLLM price map (entries without both token costs are skipped)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PriceFileError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PriceFileError(f"{path}: expected a JSON object of model entries (LiteLLM's format)")
    entries: dict[str, PriceEntry] = {}
    for key, entry in data.items():
        if key == "sample_spec" or not isinstance(entry, dict):
            continue
        if "input_cost_per_token" not in entry or "output_cost_per_token" not in entry:
            continue  # image, embedding or unpriced entries
        context = entry.get("max_input_tokens", entry.get("max_tokens"))
        if context is not None and (isinstance(context, bool) or not isinstance(context, int) or context <= 0):
            raise PriceFileError(f"`{key}`: max_input_tokens/max_tokens must be a positive whole number")
        provider = entry.get("litellm_provider")
        entries[key] = PriceEntry(_per_million(entry["input_cost_per_token"], "input_cost_per_token", key),
                                  _per_million(entry["output_cost_per_token"], "output_cost_per_token", key),
                                  context, provider if isinstance(provider, str) else None)
    if not entries:
        raise PriceFileError(f"{path} has no entry with input_cost_per_token and output_cost_per_token")
    return entries


def save_overrides(source: str | os.PathLike, entries: Mapping[str, PriceEntry],
                   environ: Mapping[str, str] | None = None, now: datetime | None = None) -> PriceOverrides:
    """Write the user-level override file; returns what was saved."""
    destination = override_path(environ)
    source_path = str(Path(source).resolve())
    loaded_at = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = {
        "format": OVERRIDE_FORMAT, "source": source_path, "loaded_at": loaded_at,
        "models": {k: {"input_per_m": e.input_per_m, "output_per_m": e.output_per_m,
                       "context": e.context, "provider": e.provider} for k, e in sorted(entries.items())},
    }
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, destination)
    return PriceOverrides(str(destination), source_path, loaded_at, dict(entries))


def load_overrides(environ: Mapping[str, str] | None = None) -> tuple[PriceOverrides | None, str | None]:
    """(the user-level overrides or None, the file's text for hashing). A broken file is ignored
    (None): `bmad models` reports it, compiling never fails because of it."""
    path = override_path(environ)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        models = data["models"]
        entries = {k: PriceEntry(float(v["input_per_m"]), float(v["output_per_m"]),
                                 int(v["context"]) if v.get("context") else None, v.get("provider"))
                   for k, v in models.items()}
        return PriceOverrides(str(path), str(data["source"]), str(data["loaded_at"]), entries), text
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, None


def _is_catalog_model(model: ir.Model) -> bool:
    from bmad.compiler.load import STDLIB_PREFIX, stdlib_file

    if model.span.file.startswith(STDLIB_PREFIX):
        return True
    stdlib_dir = Path(stdlib_file(f"{STDLIB_PREFIX}models.bmad") or "").resolve().parent
    return model.span.file not in ("", "<unknown>") and Path(model.span.file).resolve().parent == stdlib_dir


def _entry_for(model: ir.Model, overrides: PriceOverrides) -> PriceEntry | None:
    """The override entry that reprices `model`: a catalog model, or one declared without a price."""
    entry = overrides.lookup(model.id or model.name)
    if entry is not None and (model.price is None or _is_catalog_model(model)):
        return entry
    return None


def repriced_models(program: ir.Program, overrides: PriceOverrides) -> tuple[str, ...]:
    """The models of `program` that `overrides` reprices (what `apply_price_overrides` changes)."""
    return tuple(m.name for m in program.models if _entry_for(m, overrides) is not None)


def priced_with(program: ir.Program, environ: Mapping[str, str] | None = None) -> str | None:
    """The user-level override file `program` was priced with (it is then one of its sources), or
    None when the catalog's and the program's own prices stand."""
    path = str(override_path(environ))
    return path if any(f.path == path for f in program.files) else None


def apply_price_overrides(program: ir.Program, environ: Mapping[str, str] | None = None) -> ir.Program:
    """The program with the user-level prices applied to catalog models (and unpriced models)."""
    overrides, text = load_overrides(environ)
    if overrides is None or text is None:
        return program
    models = []
    changed = False
    for model in program.models:
        entry = _entry_for(model, overrides)
        if entry is not None:
            price = ir.Price(entry.input_per_m, entry.output_per_m, model.price.span if model.price else model.span)
            model = ir.replace(model, price=price, context=entry.context or model.context)
            changed = True
        models.append(model)
    if not changed:
        return program
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    files = program.files + (ir.SourceFile(overrides.path, sha, "import"),)
    return ir.replace(program, models=tuple(models), files=files)


def price_note(program: ir.Program, environ: Mapping[str, str] | None = None) -> str | None:
    """"prices from FILE, loaded DATE" when the program was priced with the user-level overrides."""
    path = priced_with(program, environ)
    if path is None:
        return None
    overrides, _ = load_overrides(environ)
    if overrides is None:
        return f"prices from {path}"
    return (f"prices from {overrides.source}, loaded {overrides.loaded_at} "
            f"(user-level override {overrides.path})")


__all__ = ["PriceEntry", "PriceFileError", "PriceOverrides", "apply_price_overrides", "load_overrides",
           "override_path", "price_note", "priced_with", "read_litellm_prices", "repriced_models",
           "save_overrides", "PRICE_NOTE_CODE"]
