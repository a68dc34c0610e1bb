"""Claude Code log events (OTLP log records) to plain `Event`s, each counted once.

Every event becomes one observation of `claude_code_events_total` whose input key is a digest of the
log record itself (with its resource and the sender's token identity): a client retry sends the same
record and is refused as a duplicate by the store's replay rule, while events of processes that share
a session id or a clock that stepped back stay distinct. The `Event` rides along as the observation's
origin, so the per-request, per-tool and per-prompt views derive from exactly the events applied.

Attribute types vary by event and CLI version (`duration_ms` is an int on `api_request` but a string
on `tool_result`; before 2.1.122 everything was a string), so every number and flag is read leniently.
Cost and tokens are NOT counted from events: the metrics carry the same numbers, and adding both
would double them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otlp_bridge.families import EVENTS
from otlp_bridge.series import Labels, Observation, Temporality, with_labels
from otlp_bridge.translate.agents import Agent, recognise
from otlp_bridge.translate.attributes import attributes_view, plain_map
from otlp_bridge.translate.metrics import LabelPolicy, resource_view

EVENT_PREFIX = "claude_code."
# Who did it: copied onto event series so per-user and per-team views work as with the metrics.
WHO = ("user.id", "user.email", "organization.id")
# Resource keys every Claude Code process has; any other resource key came from the user's
# OTEL_RESOURCE_ATTRIBUTES (team.id, department, …) and is a "who" label too.
_STANDARD_RESOURCE = frozenset({"service.name", "service.version", "service.namespace", "service.instance.id",
                                "os.type", "os.version", "host.arch", "wsl.version", "host.name"})


def as_float(value: Any) -> float | None:
    """A number from an int, double, numeric string or bool attribute; None when there is none."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return None
    if isinstance(value, int | float):
        return bool(value)
    return None


def as_label(value: Any) -> str:
    """An attribute as a label value: integral numbers without '.0', absent as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    number = as_float(value) if not isinstance(value, str) else None
    if number is not None and number.is_integer():
        return str(int(number))
    return str(value)


@dataclass(slots=True)
class Event:
    name: str  # without the `claude_code.` prefix: api_request, tool_result, …
    attributes: dict[str, Any]
    session: str  # session.id, or '' when the CLI was told not to send it
    who: Labels  # job, identity and "who" attributes as labels
    max_label_length: int = 1024

    def get(self, key: str) -> Any:
        return self.attributes.get(key)

    def number(self, key: str) -> float | None:
        return as_float(self.attributes.get(key))

    def label(self, key: str) -> str:
        """An attribute as a label value, cut to the label policy's length."""
        return as_label(self.attributes.get(key))[:self.max_label_length]


def translate_events(request: ExportLogsServiceRequest, policy: LabelPolicy, stamped: Labels = ()) -> list[Observation]:
    """One `claude_code_events_total` observation per Claude Code event; other log records are skipped.
    "Who" labels follow the metrics' label policy (drop list, names, lengths)."""
    return list(_observations(request, policy, stamped))


def _observations(request: ExportLogsServiceRequest, policy: LabelPolicy, stamped: Labels) -> Iterator[Observation]:
    stamp = repr(stamped).encode()
    cap = policy.max_value_length
    for resource_logs in request.resource_logs:
        resource = resource_view(resource_logs.resource, stamped)
        keyed = hashlib.blake2b(stamp, digest_size=16)  # every record's input key begins alike
        keyed.update(resource.serialized)
        resource_who = [(k, v) for k, v in resource.attributes.items() if k not in _STANDARD_RESOURCE]
        who_by_values: dict[tuple[str, ...], Labels] = {}  # the records of one export share a few
        for scope_logs in resource_logs.scope_logs:
            agent = recognise(scope_logs.scope.name, resource.attributes.get("service.name", ""))
            if agent is not None and agent is not Agent.CLAUDE_CODE:
                continue  # another agent's log records (Gemini's carry session.id too): the ledger's, not ours
            for record in scope_logs.log_records:
                serialized = record.SerializeToString(deterministic=True)  # its input key's, too
                # Each attribute from its bytes: ~20 per event, most of them repeated from the last one.
                attributes = plain_map(_RecordAttributes.FromString(serialized).attributes)
                name = attributes.get("event.name") or ""
                body_value = record.body
                body = body_value.string_value if body_value.HasField("string_value") else ""
                if not name and body.startswith(EVENT_PREFIX):
                    name = body[len(EVENT_PREFIX):]
                if not name or not (body.startswith(EVENT_PREFIX) or "session.id" in attributes):
                    continue
                values = tuple(map(as_label, map(attributes.get, WHO)))  # '' exactly for an absent or empty one
                who = who_by_values.get(values)
                if who is None:
                    pairs = resource_who + [(key, value) for key, value in zip(WHO, values, strict=True) if value]
                    who = who_by_values[values] = policy.output_labels(tuple(sorted(pairs)), resource.identity)
                event = Event(str(name), attributes, str(attributes.get("session.id") or ""), who, cap)
                digest = keyed.copy()
                digest.update(serialized)
                time_ns = record.time_unix_nano or record.observed_time_unix_nano
                labels = _event_labels(who, event.name[:cap])
                yield Observation(EVENTS, digest.digest(), labels, Temporality.DELTA, time_ns, time_ns, 1.0,
                                  origin=event)


_RecordAttributes = attributes_view("RecordAttributes", 6)  # LogRecord.attributes = 6


@lru_cache(maxsize=4096)  # who × event name: few distinct; bounded all the same
def _event_labels(who: Labels, name: str) -> Labels:
    return with_labels(who, event=name)


# --- the user_prompt workflow classifier ----------------------------------------------------------
# First match wins, in this order. Words are matched whole, case-insensitively.
WORKFLOWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("testing", ("test", "tests", "pytest", "unittest", "coverage", "spec", "jest", "assert")),
    ("git", ("git", "commit", "branch", "merge", "rebase", "pull request", "pr", "diff", "push")),
    ("debugging", ("bug", "debug", "error", "fix", "crash", "traceback", "exception", "failing", "broken")),
    ("deployment", ("deploy", "release", "docker", "kubernetes", "k8s", "helm", "ci", "pipeline", "terraform")),
    ("documentation", ("doc", "docs", "readme", "document", "documentation", "comment", "docstring")),
    ("api", ("api", "endpoint", "rest", "graphql", "http", "request", "webhook", "grpc")),
    ("development", ("add", "implement", "create", "build", "refactor", "feature", "write", "function", "class")),
)
_WORKFLOW_PATTERNS = [(name, re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE))
                      for name, words in WORKFLOWS]
REDACTED = "<REDACTED>"


def classify_prompt(text: str | None) -> str | None:
    """The workflow a prompt is about, or None when the text is absent or redacted."""
    if not text or text == REDACTED:
        return None
    for name, pattern in _WORKFLOW_PATTERNS:
        if pattern.search(text):
            return name
    return "other"
