"""Reads a RouterBench split (one CSV, or a folder of them) into prompts with, per recorded model,
its answer, cost and correctness. Correctness is only ever used for scoring after a run."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from bmad.runtime.providers.replay import _unwrap_list_literal

# Which workflow input receives each RouterBench eval: the kind of task is known at run time.
INPUT_OF_EVAL = {"arc-challenge": "science", "winogrande": "commonsense", "mbpp": "code"}
STRONG_MODEL = "gpt-4-1106-preview"
_RESPONSE = "|model_response"


@dataclass(slots=True)
class Item:
    id: str
    dataset: str
    prompt: str
    answers: dict[str, str] = field(default_factory=dict)  # model -> answer text
    cost: dict[str, float] = field(default_factory=dict)  # model -> USD
    correct: dict[str, float] = field(default_factory=dict)  # model -> 1.0 / 0.0

    @property
    def input_name(self) -> str:
        return INPUT_OF_EVAL.get(self.dataset, self.dataset)


def split_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
    return [path]


def read_split(path: Path | str) -> list[Item]:
    csv.field_size_limit(10**9)
    items: list[Item] = []
    for file in split_files(Path(path)):
        with file.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                item = Item(id=row["sample_id"], dataset=row["eval_name"],
                            prompt=_unwrap_list_literal(row["prompt"]))
                for column in row:
                    if not column or not column.endswith(_RESPONSE) or not row[column]:
                        continue
                    model = column[: -len(_RESPONSE)]
                    item.answers[model] = _unwrap_list_literal(row[column])
                    item.cost[model] = float(row.get(model + "|total_cost") or 0.0)
                    item.correct[model] = float(row.get(model) or 0.0)
                items.append(item)
    return items


def models_of(items: list[Item]) -> list[str]:
    return sorted({m for item in items for m in item.answers})
