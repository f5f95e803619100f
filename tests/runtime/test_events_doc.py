"""docs/cli.md lists every event kind the runtime emits, with each of its fields."""

from __future__ import annotations

from pathlib import Path

from bmad.runtime.events import EVENT_FIELDS



def test_the_docs_list_every_event_and_its_fields():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in doc.splitlines()
            if line.startswith("| `") and line.split("|")[1].strip().strip("`") in EVENT_FIELDS}
    assert set(rows) == set(EVENT_FIELDS)
    for kind, fields in EVENT_FIELDS.items():
        assert all(f"`{f}`" in rows[kind] for f in fields), kind
