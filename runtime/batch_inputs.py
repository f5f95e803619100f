"""Reads a batch's rows (`--inputs rows.jsonl|csv`) and binds each to the workflow's inputs.

A `.jsonl` line is one JSON object of typed values; a `.csv` row is text, parsed by each input's
declared type like `--input NAME=VALUE`. Every row is bound before the batch starts, so a bad row
refuses the whole batch (exit 2) with its line number instead of failing halfway through.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bmad.compiler import ir
from bmad.runtime.inputs import InputError, bind_inputs, load_json

MAX_REPORTED_ROWS = 5  # a refusal names the first few bad rows, not all ten thousand


@dataclass(frozen=True, slots=True)
class Row:
    index: int  # 0-based, in input order
    line: int  # 1-based line of the file (CSV: the row's first line)
    inputs: dict[str, Any]  # bound: typed, defaults applied


class RowsRefused(Exception):
    def __init__(self, message: str, code: str, hint: str):
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint


def read_rows(path: Path, workflow: ir.Workflow) -> list[Row]:
    """Every row of `path`, bound to `workflow`'s inputs; raises `RowsRefused` on any bad row."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv"):
        raise RowsRefused(f"--inputs {path}: expected a .jsonl or .csv file", "BMAD-E320",
                          "write one JSON object per line (.jsonl), or a CSV file with a header row")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RowsRefused(f"--inputs {path}: {exc.strerror or exc}", "BMAD-E320",
                          "pass the path of an existing .jsonl or .csv file") from None
    except UnicodeDecodeError as exc:
        raise RowsRefused(f"--inputs {path}: not UTF-8 text ({exc.reason})", "BMAD-E320",
                          "save the file as UTF-8") from None
    raw = _csv_rows(path, text) if suffix == ".csv" else _jsonl_rows(path, text)
    rows: list[Row] = []
    problems: list[str] = []
    for line, values, texts in raw:
        try:
            bound = bind_inputs(workflow, values, texts=texts)
        except InputError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        rows.append(Row(len(rows), line, bound))
    if problems:
        shown = "; ".join(problems[:MAX_REPORTED_ROWS])
        more = f" (and {len(problems) - MAX_REPORTED_ROWS} more)" if len(problems) > MAX_REPORTED_ROWS else ""
        raise RowsRefused(f"--inputs {path}: {len(problems)} row(s) don't fit workflow "
                          f"`{workflow.name}`: {shown}{more}", "BMAD-E322",
                          "each row needs the workflow's `input` names with values of their types")
    if not rows:
        raise RowsRefused(f"--inputs {path}: no rows", "BMAD-E320",
                          "write at least one row (one JSON object per line, or CSV rows under a header)")
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = load_json(line)  # deep nesting too: a ValueError, not a crash
        except ValueError as exc:
            raise RowsRefused(f"--inputs {path}:{number}: not JSON ({exc})", "BMAD-E321",
                              "write one JSON object per line, e.g. {\"topic\": \"bees\"}") from None
        if not isinstance(value, dict):
            raise RowsRefused(f"--inputs {path}:{number}: a row must be a JSON object, not "
                              f"{type(value).__name__}", "BMAD-E321",
                              "write one JSON object per line, e.g. {\"topic\": \"bees\"}")
        out.append((number, value, {}))
    return out


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise RowsRefused(f"--inputs {path}:1: {exc}", "BMAD-E321", "check the CSV header") from None
    names = [h.strip() for h in header]
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        raise RowsRefused(f"--inputs {path}:1: the header must name each column once",
                          "BMAD-E321", "the first row names the workflow's inputs, e.g. topic,words")
    out = []
    try:
        for cells in reader:
            number = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                raise RowsRefused(f"--inputs {path}:{number}: {len(cells)} cells for "
                                  f"{len(names)} columns", "BMAD-E321",
                                  "quote cells that contain commas, e.g. \"a, b\"")
            out.append((number, {}, dict(zip(names, cells))))
    except csv.Error as exc:
        raise RowsRefused(f"--inputs {path}:{reader.line_num}: {exc}", "BMAD-E321",
                          "check the CSV quoting") from None
    return out
