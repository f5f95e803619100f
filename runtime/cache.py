"""The content-hash task cache: reuse a task's result across runs when nothing that shapes it changed.

A task's key hashes its components: the prompt and system templates, the values they and `when` /
`for each` read (inputs, loop sources, upstream outputs), the model chain and consensus members,
and the parameters (max_tokens, temperature, returns, quality gate, consensus). `--explain-cache`
compares a miss with the latest entry for the same task and names the components that changed
(Nextflow's -resume, Snakemake's rerun triggers).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from bmad.compiler import ir_codec
from bmad.runtime.events import EventBus

if TYPE_CHECKING:
    from bmad.runtime.interpreter import Frame, Node, TaskResult

COMPONENT_NAMES = {"prompt": "the prompt or system text", "inputs": "the values it reads",
                   "models": "the routed models", "params": "its parameters",
                   "upstream": "upstream results", "workflow": "the workflow"}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def task_components(frame: "Frame", node: "Node") -> dict[str, str]:
    task = node.task
    # Every workflow input (cheap, and covers `when` / `for each` sources), then what templates read.
    reads = {i.name: frame.scope.get(i.name) for i in frame.compiled.workflow.inputs}
    for template in (task.prompt, task.system):
        if template is not None:
            for ref in template.refs:
                reads[ref.root] = frame.scope.get(ref.root)
    params = {"max_tokens": node.max_tokens, "temperature": task.temperature,
              "returns": ir_codec.to_data(task.returns, spans=False),
              "quality": ir_codec.to_data(task.quality, spans=False),
              "consensus": ir_codec.to_data(task.consensus, spans=False),
              "for_each": ir_codec.to_data(task.for_each, spans=False),
              "reduce": ir_codec.to_data(task.reduce, spans=False),
              "call": ir_codec.to_data(task.call, spans=False),
              "when": ir_codec.to_data(task.when, spans=False)}
    return {
        "workflow": frame.compiled.workflow.name,
        "prompt": _digest([task.prompt.text if task.prompt else None,
                           task.system.text if task.system else None]),
        "inputs": _digest(reads),
        "models": _digest([node.chain, node.participants, node.method, node.judge]),
        "params": _digest(params),
        "upstream": _digest({d: frame.scope.get(d) for d in node.dep_ids}),
    }


class TaskCache:
    def __init__(self, journal: Any, events: EventBus, run_id: str, *, explain: bool = False):
        self.journal = journal
        self.events = events
        self.run_id = run_id
        self.explain = explain
        self.decisions: list[dict[str, Any]] = []

    def lookup(self, frame: "Frame", node: "Node", path: str) -> tuple[str, dict[str, Any] | None]:
        components = task_components(frame, node)
        key = _digest(components)
        hit = self.journal.cache_get(key)
        if hit is not None:
            reason = f"hit: same inputs as run {hit['run_id']}"
        else:
            latest = self.journal.cache_latest(components["workflow"], path)
            if latest is None:
                reason = "miss: never run with --cache before"
            else:
                changed = [COMPONENT_NAMES[k] for k, v in components.items()
                           if latest["components"].get(k) != v]
                reason = "miss: changed " + ", ".join(changed) if changed else "miss: no entry"
        decision = {"task": path, "hit": hit is not None, "key": key, "reason": reason}
        self.decisions.append(decision)
        if self.events.active:
            self.events.emit("cache_decision", path, hit=hit is not None, key=key, reason=reason)
        return key, hit

    def store(self, key: str, frame: "Frame", node: "Node", path: str, result: "TaskResult") -> None:
        self.journal.cache_put(key, workflow=frame.compiled.workflow.name, task_id=path,
                               model=result.model, components=task_components(frame, node),
                               output=result.output, quality=result.quality, run_id=self.run_id)
