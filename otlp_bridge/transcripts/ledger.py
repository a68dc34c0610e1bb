"""Each API response once, however many lines and files repeat it.

Claude Code writes one response as several lines (one per content block), copies earlier messages
into the new file of a resumed or forked session, and subagent files repeat what the main file has.
All of those copies carry the response's `message.id` and the line's `requestId`. A usage is a copy
when either id was seen before — not only when both were: ccusage keys on the pair and, when one of
the two is missing, keeps every copy. The copies are merged by taking the largest count per type
(a streamed message's later lines never report less); the first copy's time, session and project
stand. A usage with neither id cannot be matched and counts once per line (`unidentified`).

Memory grows with the number of distinct responses (one small record each), not with file sizes.
"""

from __future__ import annotations

from otlp_bridge.transcripts.reader import Usage


class Ledger:
    def __init__(self) -> None:
        self.records: list[Usage] = []
        self.duplicates = 0
        self.unidentified = 0
        self._by_message: dict[str, Usage] = {}
        self._by_request: dict[str, Usage] = {}

    def add(self, usage: Usage) -> bool:
        """Record `usage`; False when it is a copy of one already recorded (then merged into it)."""
        known = self._by_message.get(usage.message_id) if usage.message_id else None
        if known is None and usage.request_id:
            known = self._by_request.get(usage.request_id)
        if known is None:
            self.records.append(usage)
            if not usage.message_id and not usage.request_id:
                self.unidentified += 1
            self._index(usage)
            return True
        self.duplicates += 1
        known.merge(usage)
        self._index(known)
        return False

    def _index(self, usage: Usage) -> None:
        if usage.message_id:
            self._by_message.setdefault(usage.message_id, usage)
        if usage.request_id:
            self._by_request.setdefault(usage.request_id, usage)
