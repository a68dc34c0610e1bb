"""Builders the unit tests share: one clock (wall and uptime), observations, stores, OTLP requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otlp_bridge.families import COST, TOKENS
from otlp_bridge.series import FamilyMeta, Kind, Labels, Observation, Temporality, input_key
from otlp_bridge.store.accumulator import Limits, Store, Uptime
from otlp_bridge.store.history import History

COST_FAMILY = FamilyMeta(COST, Kind.COUNTER, "cost")
TOKEN_FAMILY = FamilyMeta(TOKENS, Kind.COUNTER, "tokens")
BERLIN = ZoneInfo("Europe/Berlin")


class Clock:
    """The wall clock and the uptime clock, moved together (or apart, to jump the wall clock)."""

    def __init__(self, moment: datetime | float) -> None:
        self.now = moment.timestamp() if isinstance(moment, datetime) else moment
        self.running = 0.0

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.running

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.running += seconds

    def jump(self, seconds: float) -> None:
        """The wall clock alone moves (NTP step, a VM resumed): no time has run."""
        self.now += seconds


def store_for(clock: Clock, timezone: str = "UTC", limits: Limits | None = None) -> Store:
    """A store with cost and token history, as the bridge builds it."""
    return Store(limits, clock=clock, history=History({COST, TOKENS}, ZoneInfo(timezone)),
                 uptime=Uptime(clock.monotonic))


def ns(moment: datetime | float) -> int:
    return int((moment.timestamp() if isinstance(moment, datetime) else moment) * 1e9)


def delta(family: FamilyMeta, labels: Labels, value: float, at: datetime | float, stream: object = None,
          start: datetime | float | None = None) -> Observation:
    """A DELTA point of its own input stream (`stream` names it; default: the labels)."""
    time_ns = ns(at)
    return Observation(family, input_key(family.name, stream if stream is not None else labels), labels,
                       Temporality.DELTA, ns(start) if start is not None else time_ns - 1, time_ns, value)


def cumulative(family: FamilyMeta, labels: Labels, value: float, at: datetime | float, start: datetime | float,
               stream: object = None) -> Observation:
    """A CUMULATIVE point; its stream is (stream, start), as translation keys a monotonic one."""
    return Observation(family, input_key(family.name, stream if stream is not None else labels, ns(start)), labels,
                       Temporality.CUMULATIVE, ns(start), ns(at), value)


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def logs_request(*events: tuple[str, int, dict[str, Any]], resource: dict[str, Any] | None = None
                 ) -> ExportLogsServiceRequest:
    """An OTLP logs export of Claude Code events: (event name, time in ns, attributes) each."""
    records = [{
        "timeUnixNano": str(time_ns), "body": {"stringValue": f"claude_code.{name}"},
        "attributes": [{"key": k, "value": _any_value(v)} for k, v in {"event.name": name, **attributes}.items()],
    } for name, time_ns, attributes in events]
    document = {"resourceLogs": [{
        "resource": {"attributes": [{"key": k, "value": _any_value(v)} for k, v in
                                    (resource or {"service.name": "claude-code"}).items()]},
        "scopeLogs": [{"scope": {"name": "com.anthropic.claude_code.events"}, "logRecords": records}],
    }]}
    return json_format.ParseDict(document, ExportLogsServiceRequest())

