"""The Ray executor: model calls run on a Ray cluster; the plan, the ledger and the journal stay
with the driver (this process), so there is one writer and nothing is counted twice.

How a call travels: the interpreter and `ModelCaller` run here as usual (budget reservation,
provider concurrency and rpm/tpm limits, retries, fallbacks, the journal). Only the provider's
`complete()` is sent away: `RayProvider` hands the request to one of a pool of async actors
(`CallServer`, many concurrent I/O-bound calls each), which builds the real provider from the
plan's declaration and awaits it. Every call passes through the driver, so provider limits hold
across the cluster without a separate limiter. Results stream back as each call finishes.

Failures: Ray's own retries cover system failures (`max_restarts=-1`, `max_task_retries=-1`: an
actor lost with its worker or node is restarted elsewhere and its pending calls re-sent); provider
errors come back as values and go through bmad's retry and fallback. A call's identity is its
run, its content hash and its attempt (`call_identity`): an actor answers a repeated identity from
memory, and the driver records each identity once, when its answer arrives, so a call Ray
re-executes after a worker or node dies is journaled and paid for once.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import itertools
import json
import os
from collections import OrderedDict
from typing import Any

from bmad.compiler import ir
from bmad.compiler.plan import Plan
from bmad.runtime.executors.local import RunOutcome, RunRefused, RunRequest, provider_options
from bmad.runtime.providers import base

ACTORS_PER_NODE = 2
ACTOR_MAX_CONCURRENCY = 1000
REMEMBERED_CALLS = 20_000  # per actor: answers kept for repeated identities
INSTALL_HINT = "install the extra: pip install 'bmad[ray]' (or pip install 'ray[default]')"

# The run a call belongs to (batch rows share one provider object): set by the batch per row.
current_run_id: contextvars.ContextVar[str] = contextvars.ContextVar("bmad_run_id", default="")


def import_ray():
    """Ray, or a clear refusal when it is not installed."""
    try:
        import ray  # noqa: PLC0415 (optional dependency)
    except ImportError as exc:
        raise RunRefused(f"--executor ray needs Ray, which is not installed ({exc})", "BMAD-E324",
                         INSTALL_HINT) from None
    return ray


def call_identity(run_id: str, request: base.CompletionRequest) -> str:
    """The run, what is asked and which attempt: equal identities are the same call."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{run_id}\x00{request.model_name}\x00{request.model_id}\x00{request.task_id}\x00"
             f"{request.max_tokens}\x00{request.temperature}\x00".encode())
    h.update(json.dumps(request.json_schema, sort_keys=True, default=str).encode())
    h.update("\x00".join(request.enum_values).encode())
    for m in request.messages:
        h.update(b"\x01" + m.role.encode() + b"\x02" + m.content.encode("utf-8", "surrogatepass"))
    h.update(b"\x03" + str(request.metadata.get("attempt", "")).encode())
    return h.hexdigest()


class CallServer:
    """A Ray actor (async): builds providers from their declarations and answers calls."""

    def __init__(self, declarations: dict[str, ir.Provider], mode: str | None, options: Any):
        self._declarations = declarations
        self._mode = mode
        self._options = options
        self._providers: dict[str, base.Provider] = {}
        self._pending: dict[str, asyncio.Future] = {}
        self._answered: OrderedDict[str, Any] = OrderedDict()

    def _provider(self, name: str) -> base.Provider:
        from bmad.runtime.providers.registry import build_provider

        client = self._providers.get(name)
        if client is None:
            decl = self._declarations.get(name) or ir.Provider(name=name, kind="sim")
            client = build_provider(decl, mode=self._mode, options=self._options)
            self._providers[name] = client
        return client

    async def complete(self, provider: str, identity: str, request: base.CompletionRequest):
        """The response, or the provider's error as a value (application errors are bmad's)."""
        if identity in self._answered:
            return self._answered[identity]
        pending = self._pending.get(identity)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[identity] = future
        try:
            try:
                outcome: Any = await self._provider(provider).complete(request)
            except base.ProviderError as exc:
                outcome = exc
            except Exception as exc:  # a provider bug answers as an error, never kills the actor
                outcome = base.ProviderError(f"{type(exc).__name__}: {exc}", provider=provider)
            future.set_result(outcome)
            self._answered[identity] = outcome
            if len(self._answered) > REMEMBERED_CALLS:
                self._answered.popitem(last=False)
            return outcome
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            del self._pending[identity]

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


class RayProvider:
    """`base.Provider` for the driver's model pool: each call goes to a `CallServer` actor."""

    def __init__(self, name: str, calls: "RayCalls"):
        self.name = name
        self._calls = calls

    async def complete(self, request: base.CompletionRequest,
                       on_progress: base.ProgressCallback | None = None) -> base.CompletionResponse:
        outcome = await self._calls.submit(self.name, request)
        if on_progress is not None:
            on_progress(outcome.output_tokens)
        return outcome

    async def aclose(self) -> None:
        return None


class RayCalls:
    """The driver's side: the connection, the actor pool, and each call's round trip."""

    def __init__(self, ray, actors: list[Any]):
        self._ray = ray
        self.actors = actors
        self._next = itertools.cycle(range(len(actors)))
        self.submitted = 0
        self.system_retries = 0
        self.placement_at_start = self.placement()

    def placement(self) -> dict[str, int]:
        """How many call actors each node holds (node ids shortened); `?` when Ray won't say."""
        try:
            nodes = self._ray.get([a.node.remote() for a in self.actors], timeout=60)
        except Exception:
            return {"?": len(self.actors)}
        counts: dict[str, int] = {}
        for node in nodes:
            counts[node[:8]] = counts.get(node[:8], 0) + 1
        return counts

    def describe(self) -> str:
        """A line for the final report: where the actors ran, before and after the work."""
        start, end = self.placement_at_start, self.placement()
        return (f"ray: {len(self.actors)} call actors on {len(start)} node(s) at the start, "
                f"{len(end)} at the end; {self.submitted} calls sent, "
                f"{self.system_retries} given up by Ray and retried by bmad")

    @classmethod
    def connect(cls, plan: Plan, request: RunRequest, *, address: str | None = None,
                actors: int | None = None) -> "RayCalls":
        ray = import_ray()
        address = address or os.environ.get("RAY_ADDRESS") or None
        if not ray.is_initialized():
            unreachable = _unreachable(address)
            if unreachable is not None:  # ray.init would wait minutes for a GCS that isn't there
                raise RunRefused(f"can't connect to the Ray cluster at {address}: {unreachable}",
                                 "BMAD-E325", "start one with `ray start --head`, or pass "
                                              "--ray-address HOST:6379 (or set RAY_ADDRESS)")
            try:
                ray.init(address=address, logging_level="ERROR", log_to_driver=False)
            except Exception as exc:  # ConnectionError, RuntimeError, ...: Ray says why
                raise RunRefused(f"can't connect to the Ray cluster at {address or 'auto'}: "
                                 f"{type(exc).__name__}: {exc}", "BMAD-E325",
                                 "start one with `ray start --head`, or pass --ray-address "
                                 "HOST:6379 (or set RAY_ADDRESS)") from None
        mode, options = provider_options(plan, request)
        declarations = {p.name: p for p in plan.program.providers}
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
        count = actors or max(1, ACTORS_PER_NODE * len(nodes))
        # Restart a lost actor anywhere, and re-send the calls it had in flight.
        remote = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1,
                            max_concurrency=ACTOR_MAX_CONCURRENCY)(CallServer)
        # Round-robin over the nodes (SPREAD alone may pack zero-CPU actors on one node); soft,
        # so that an actor whose node dies restarts on another.
        pool = [remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                    nodes[i % len(nodes)], soft=True) if nodes else "SPREAD")
                .remote(declarations, mode, options) for i in range(count)]
        return cls(ray, pool)

    def provider_factory(self, decl: ir.Provider) -> RayProvider:
        return RayProvider(decl.name, self)

    async def submit(self, provider: str, request: base.CompletionRequest) -> base.CompletionResponse:
        ray = self._ray
        identity = call_identity(current_run_id.get(), request)
        actor = self.actors[next(self._next)]
        self.submitted += 1
        ref = actor.complete.remote(provider, identity, request)
        try:
            outcome = await ref
        except asyncio.CancelledError:
            ray.cancel(ref)
            raise
        except ray.exceptions.RayError as exc:
            # Ray gave up on its own retries (or the cluster went away): bmad's retry decides.
            self.system_retries += 1
            raise base.Transient(f"Ray: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                                 provider=provider) from None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        ray = self._ray
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass
        self.actors = []
        ray.shutdown()


def _unreachable(address: str | None) -> str | None:
    """Why HOST:PORT takes no TCP connection (None: it does, or the address is not HOST:PORT)."""
    import socket

    if not address or address == "auto" or "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return None
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def execute_plan_on_ray(plan: Plan, request: RunRequest, *, address: str | None = None,
                        actors: int | None = None) -> RunOutcome:
    """One run whose model calls go to the cluster (the batch does the same per row)."""
    from bmad.runtime.executors.local import execute_plan

    calls = RayCalls.connect(plan, request, address=address, actors=actors)
    try:
        request.provider_factory = calls.provider_factory
        return execute_plan(plan, request)
    finally:
        calls.close()
