"""The content-hash task cache: reuse a task's result across runs when nothing that shapes it changed.

A task's key hashes exactly what can change its result (Nextflow's -resume, Snakemake's rerun
triggers): the prompt and system templates; the values the task itself reads, found from the IR's
references (its templates, `when`, `for each` list, call arguments), so an input no clause of the
task names is not in its key; the results of the tasks it depends on; the model chain and consensus
members; and the parameters (max_tokens, temperature, returns, quality gate, consensus, the
`for each` / `reduce` / `when` clauses). `--explain-cache` compares a miss with the latest entry
for the same task and names the components that changed.

Granularity: a task, not a model call. A `for each` task is an entry for its whole list, and each
of its items one of its own (`lookup_item` / `store_item`: keyed like its task with the list
replaced by the item), so when the list changes, an unchanged item is reused wherever it sits in
it and only the new or changed items run. A workflow call (`task t = wf(...)`) is never an
entry of its own: its key could not see the called workflow's body, so the called workflow runs
and each of its tasks is looked up under its own key (per `for each` item, too). A result with
failed `for each` items (`on_error continue`) is not stored: the next run tries them again.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from bmad.compiler import ir, ir_codec
from bmad.runtime.events import EventBus

if TYPE_CHECKING:
    from bmad.runtime.interpreter import Frame, Node, TaskResult

# Bumped when keys are made differently: an entry from before reads as "made by an older bmad"
# rather than as a change of the task's own components.
KEY_FORMAT = 2

COMPONENT_NAMES = {"prompt": "the prompt or system text", "inputs": "the values it reads",
                   "models": "the routed models", "params": "its parameters",
                   "upstream": "upstream results", "workflow": "the workflow",
                   "item": "its `for each` item", "format": "the cache's key format"}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _expr_roots(expr: ir.Expr | None, into: set[str]) -> None:
    """The scope names an expression reads (the IR's `Ref`s)."""
    stack = [expr] if expr is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, ir.Ref):
            into.add(node.root)
        elif isinstance(node, ir.Binary):
            stack += (node.left, node.right)
        elif isinstance(node, ir.Unary):
            stack.append(node.operand)
        elif isinstance(node, ir.ListExpr):
            stack.extend(node.items)


def read_roots(task: ir.Task) -> tuple[frozenset[str], frozenset[str]]:
    """The scope names a task reads: (by every clause but its `for each` list, by that list).

    Templates (prompt, system), `when`, call arguments, `depends` and the `reduce` source; the loop
    variable is the item, not a scope name, in templates and call arguments (`when` can't read it,
    BMAD-E132, and the list is evaluated outside the loop)."""
    own: set[str] = set()
    for template in (task.prompt, task.system):
        if template is not None:
            own.update(ref.root for ref in template.refs)
    if task.call is not None:
        for arg in task.call.arguments:
            _expr_roots(arg.value, own)
    if task.for_each is not None:
        own.discard(task.for_each.var)
    _expr_roots(task.when, own)
    own.update(d.name for d in task.depends)
    if task.reduce is not None:
        own.add(task.reduce.source.name)
    listed: set[str] = set()
    if task.for_each is not None:
        _expr_roots(task.for_each.source, listed)
    return frozenset(own), frozenset(listed)


def _params(node: "Node", *, item: bool = False) -> dict[str, Any]:
    task = node.task
    params = {"max_tokens": node.max_tokens, "temperature": task.temperature,
              "returns": ir_codec.to_data(task.returns, spans=False),
              "quality": ir_codec.to_data(task.quality, spans=False),
              "consensus": ir_codec.to_data(task.consensus, spans=False),
              "for_each": ir_codec.to_data(task.for_each, spans=False),
              "reduce": ir_codec.to_data(task.reduce, spans=False),
              "call": ir_codec.to_data(task.call, spans=False),
              "when": ir_codec.to_data(task.when, spans=False)}
    if item and task.for_each is not None:  # the item stands for the list: only its name counts
        params["for_each"] = task.for_each.var
    return params


def _components(frame: "Frame", node: "Node", names: set[str] | frozenset[str],
                upstream: tuple[str, ...] | list[str], params: dict[str, Any]) -> dict[str, Any]:
    task = node.task
    scope = frame.scope
    return {
        "format": KEY_FORMAT,
        "workflow": frame.compiled.workflow.name,
        "prompt": _digest([task.prompt.text if task.prompt else None,
                           task.system.text if task.system else None]),
        # Inputs (and anything else in scope that is not a task's result) by name; a task's
        # result is an upstream result, not a value read here, so a miss names it once.
        "inputs": _digest({n: scope.get(n) for n in names}),
        "models": _digest([node.chain, node.participants, node.method, node.judge]),
        "params": _digest(params),
        "upstream": _digest({d: scope.get(d) for d in upstream}),
    }


def task_components(frame: "Frame", node: "Node") -> dict[str, Any]:
    own, listed = read_roots(node.task)
    deps = set(node.dep_ids)
    names = (own | listed) - deps
    return _components(frame, node, names, node.dep_ids, _params(node))


def item_components(frame: "Frame", node: "Node", item: Any) -> dict[str, Any]:
    """A `for each` item's components: its task's, with the list replaced by the item. What only
    the list reads (an input, an upstream task) is left out: the item carries its part of it."""
    own, listed = read_roots(node.task)
    deps = set(node.dep_ids)
    names = own - deps
    upstream = [d for d in node.dep_ids if d in own or d not in listed]
    components = _components(frame, node, names, upstream, _params(node, item=True))
    components["item"] = _digest(item)
    return components


class TaskCache:
    def __init__(self, journal: Any, events: EventBus, run_id: str, *, explain: bool = False):
        self.journal = journal
        self.events = events
        self.run_id = run_id
        self.explain = explain
        self.decisions: list[dict[str, Any]] = []
        self._items: dict[str, dict[str, Any]] = {}  # a fan-out's shared components, by task path

    def lookup(self, frame: "Frame", node: "Node",
               path: str) -> tuple[str | None, dict[str, Any] | None]:
        if node.task.call is not None:
            # Never an entry: the key can't see the called workflow's body. It runs, and its
            # tasks are looked up one by one (`go/say` for `task go = inner(...)`).
            return None, self._decide(path, None, None, "not cached itself: a call of "
                                      f"`{node.task.call.workflow.name}`, whose tasks are "
                                      "cached one by one")
        return self._lookup(path, task_components(frame, node), frame.compiled.workflow.name)

    def lookup_item(self, frame: "Frame", node: "Node", path: str, index: int,
                    item: Any) -> tuple[str, dict[str, Any] | None]:
        """One `for each` item of a prompt task (`path[index]`), keyed by its own values."""
        key, hit = self._lookup(f"{path}[{index}]", self._item_components(frame, node, path, item),
                                frame.compiled.workflow.name)
        assert key is not None
        return key, hit

    def _item_components(self, frame: "Frame", node: "Node", path: str,
                         item: Any) -> dict[str, Any]:
        shared = self._items.get(path)
        if shared is None:  # digested once per fan-out, not once per item
            shared = self._items[path] = item_components(frame, node, None)
        return {**shared, "item": _digest(item)}

    def _lookup(self, path: str, components: dict[str, Any],
                workflow: str) -> tuple[str | None, dict[str, Any] | None]:
        key = _digest(components)
        hit = self.journal.cache_get(key)
        if hit is not None:
            reason = f"hit: same inputs as run {hit['run_id']}"
        else:
            latest = self.journal.cache_latest(workflow, path)
            if latest is None:
                reason = "miss: never run with --cache before"
            elif latest["components"].get("format") != KEY_FORMAT:
                reason = "miss: its entry was keyed by an older bmad"
            else:
                changed = [COMPONENT_NAMES.get(k, k) for k, v in components.items()
                           if latest["components"].get(k) != v]
                reason = "miss: changed " + ", ".join(changed) if changed else "miss: no entry"
        return key, self._decide(path, key, hit, reason)

    def _decide(self, path: str, key: str | None, hit: dict[str, Any] | None,
                reason: str) -> dict[str, Any] | None:
        self.decisions.append({"task": path, "hit": hit is not None, "key": key, "reason": reason})
        if self.events.active:
            self.events.emit("cache_decision", path, hit=hit is not None, key=key, reason=reason)
        return hit

    def store(self, key: str, frame: "Frame", node: "Node", path: str,
              result: "TaskResult") -> None:
        self._items.pop(path, None)
        if result.error is not None:  # `for each` items failed (on_error continue): not reused
            return
        self.journal.cache_put(key, workflow=frame.compiled.workflow.name, task_id=path,
                               model=result.model, components=task_components(frame, node),
                               output=result.output, quality=result.quality, run_id=self.run_id)

    def store_item(self, key: str, frame: "Frame", node: "Node", path: str, index: int, item: Any,
                   output: Any, model: str | None, quality: float | None) -> None:
        """An item that answered (a failed one is never stored)."""
        self.journal.cache_put(key, workflow=frame.compiled.workflow.name,
                               task_id=f"{path}[{index}]", model=model,
                               components=self._item_components(frame, node, path, item),
                               output=output, quality=quality, run_id=self.run_id)
