"""What `bmad doctor` learns about one provider: reachable, authorised, which models it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HealthStatus = Literal["ok", "no_key", "auth", "unreachable", "error", "unavailable"]


@dataclass(frozen=True, slots=True)
class HealthReport:
    provider: str
    kind: str
    status: HealthStatus
    detail: str = ""  # plain words, already redacted
    models: tuple[str, ...] | None = None  # what the provider says it serves (None: not asked)
    latency_s: float | None = None
    spends_tokens: bool = False  # True when the check had to make a (tiny) completion

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, object]:
        return {"provider": self.provider, "kind": self.kind, "status": self.status,
                "ok": self.ok, "detail": self.detail,
                "models": list(self.models) if self.models is not None else None,
                "latency_s": self.latency_s, "spends_tokens": self.spends_tokens}

