"""The bridge's own counters: what it received, accepted and refused."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SelfMetrics:
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # transport, signal, outcome
    items: Counter[tuple[str, str]] = field(default_factory=Counter)  # signal, outcome
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # signal, reason
    connections: Counter[tuple[str, str]] = field(default_factory=Counter)  # transport, reason refused

    def request(self, transport: str, signal: str, outcome: str) -> None:
        self.requests[transport, signal, outcome] += 1

    def items_seen(self, signal: str, outcome: str, count: int) -> None:
        if count:
            self.items[signal, outcome] += count

    def connection_refused(self, transport: str, reason: str) -> None:
        self.connections[transport, reason] += 1

    def reject(self, signal: str, reason: str, count: int) -> None:
        if count:
            self.rejected[signal, reason] += count
            self.items[signal, "rejected"] += count
