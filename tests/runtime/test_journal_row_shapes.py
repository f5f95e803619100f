"""The journal writes common call and task rows through narrower statements (no NULL columns
bound); every shape must store exactly what the full statement stores, in the order added."""

from __future__ import annotations

import sqlite3

from bmad.runtime.journal import _INSERT_CALL, _INSERT_TASK, Journal

CALLS = [  # (positional add_call arguments after run_id, keyword arguments)
    (("a", "m0/", "m", "h1", "error", None, 0, 0, 0.0, 0.5, "boom", "transient"), {"attempt": 1}),
    (("a", "m0/", "m", "h2", "ok", "x", 3, 4, 0.01, 0.2), {"attempt": 2}),
    (("a", "m0/", "m", "h3", "ok", "y", 3, 4, None, 0.2), {"capability": "code", "attempt": 3}),
    (("a", "judge", "j", "h4", "ok", "0.9", 5, 1, 0.02, 0.1), {"purpose": "judge"}),
    (("b", "m0/", "m", "h5", "ok", "z", 0, 0, 0.0, 0.0), {"cached": True}),
    (("b", "m0/", "m", "h6", "ok", "w", 1, 1, 0.0, 0.0), {"quality": 0.7, "attempt": 1}),
]
TASKS = [
    (("a", "completed", "m", 3, 0.03, 14, None, "x"), {"started_at": 1.0, "finished_at": 2.0}),
    (("b", "completed", "m", 1, 0.0, 2, 0.8, {"k": [1, "é"]}),
     {"started_at": 1.0, "finished_at": 2.0, "capability": "code"}),
    (("c", "failed", "m", 2, 0.0, 0, None, None), {"error": "boom", "finished_at": 3.0}),
    (("d", "completed", "m", 0, 0.0, 0, 0.9, "cached"), {"cache_key": "k1", "cached": True}),
    (("e", "not_started", None, 0, 0.0, 0, None, None), {"capability": "code"}),
]


def _full_rows(tmp_path, calls, tasks):
    """The same rows written through the full statements, as the journal wrote them before."""
    path = tmp_path / "full.db"
    journal = Journal(path)
    for row in calls:
        journal.db.execute(_INSERT_CALL, row)
    for row in tasks:
        journal.db.execute(_INSERT_TASK, row)
    out = journal.call_rows("r"), journal.task_rows("r")
    journal.close()
    return out


def _full_tuples(journal_calls, journal_tasks):
    calls = [(c["id"], c["run_id"], c["task_id"], c["slot"], c["model"], c["request_hash"], c["status"],
              c["response_text"], c["input_tokens"], c["output_tokens"], c["cost_usd"],
              c["latency_s"], c["error"], c["error_kind"], c["cached"], c["purpose"],
              c["capability"], c["quality"], c["created_at"], c["attempt"]) for c in journal_calls]
    tasks = [(i, *t.values()) for i, t in enumerate(journal_tasks)]  # ids in block 0: no run row
    return calls, tasks


def _write(journal: Journal, one_by_one: bool) -> None:
    for args, kwargs in CALLS:
        journal.add_call("r", *args, **kwargs)
        if one_by_one:
            journal.flush()
    for args, kwargs in TASKS:
        journal.add_task("r", *args, **kwargs)
        if one_by_one:
            journal.flush()
    journal.flush()


def test_every_row_shape_stores_what_the_full_statement_stores(tmp_path):
    for one_by_one in (False, True):
        path = tmp_path / f"shapes-{one_by_one}.db"
        journal = Journal(path)
        _write(journal, one_by_one)
        calls, tasks = journal.call_rows("r"), journal.task_rows("r")
        journal.close()
        # Added in order, whatever their shape: ids increase in the order calls were made.
        assert [c["request_hash"] for c in calls] == ["h1", "h2", "h3", "h4", "h5", "h6"]
        assert [c["id"] for c in calls] == sorted(c["id"] for c in calls)
        assert calls[0]["error"] == "boom" and calls[0]["error_kind"] == "transient"
        assert calls[1]["error"] is None and calls[1]["cached"] == 0 and calls[1]["quality"] is None
        assert calls[1]["capability"] is None and calls[2]["capability"] == "code"
        assert calls[2]["cost_usd"] is None and calls[3]["attempt"] is None
        assert calls[3]["purpose"] == "judge" and calls[4]["cached"] == 1
        assert calls[5]["quality"] == 0.7
        by_id = {t["task_id"]: t for t in tasks}
        assert by_id["a"]["cached"] == 0 and by_id["a"]["error"] is None
        assert by_id["a"]["cache_key"] is None and by_id["a"]["quality"] is None
        assert by_id["b"]["output_json"] == '{"k": [1, "é"]}' and by_id["b"]["quality"] == 0.8
        assert by_id["c"]["error"] == "boom" and by_id["c"]["output_json"] == "null"
        assert by_id["d"]["cached"] == 1 and by_id["d"]["cache_key"] == "k1"
        assert by_id["e"]["model"] is None and by_id["e"]["capability"] == "code"

        # Byte for byte what the full statements store from the same values.
        full_dir = tmp_path / f"full-{one_by_one}"
        full_dir.mkdir()
        full_calls, full_tasks = _full_rows(full_dir, *_full_tuples(calls, tasks))
        assert [{k: v for k, v in c.items() if k != "id"} for c in full_calls] == \
            [{k: v for k, v in c.items() if k != "id"} for c in calls]
        assert full_tasks == tasks
        raw = sqlite3.connect(path)
        types = raw.execute("SELECT typeof(error), typeof(cached), typeof(quality) FROM calls "
                            "WHERE request_hash='h2'").fetchone()
        raw.close()
        assert types == ("null", "integer", "null")


def test_a_finished_task_replaces_its_earlier_row_whatever_the_shapes(tmp_path):
    journal = Journal(tmp_path / "runs.db")
    journal.add_task("r", "a", "failed", "m", 1, 0.0, 0, None, None, error="boom", cache_key="k")
    journal.flush()
    journal.add_task("r", "a", "completed", "m", 2, 0.1, 5, None, "ok")
    journal.flush()
    rows = journal.task_rows("r")
    journal.close()
    assert len(rows) == 1
    assert (rows[0]["status"], rows[0]["error"], rows[0]["cache_key"], rows[0]["output_json"]) == \
        ("completed", None, None, '"ok"')
