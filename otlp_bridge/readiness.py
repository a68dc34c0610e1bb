"""Whether exports are being accepted right now: what /readyz answers.

Ready once every listener is bound and until shutdown begins, unless a check names a reason
not to be: the state file lost, every request slot taken. A load balancer then sends
senders elsewhere, and an operator reading /readyz sees why.
"""

from __future__ import annotations

from collections.abc import Callable

Check = Callable[[], str | None]  # a reason exports are not accepted now, or None


class Readiness:
    def __init__(self) -> None:
        self.started = False
        self.stopping_reason = "starting"
        self.checks: list[Check] = []

    @property
    def ready(self) -> bool:
        return self.reason is None

    @ready.setter
    def ready(self, value: bool) -> None:
        """The lifecycle: True once listening, False once shutdown begins."""
        self.started = value

    @property
    def reason(self) -> str | None:
        """Why not ready (None when ready): the lifecycle first, then the first failing check."""
        if not self.started:
            return self.stopping_reason
        return next((why for check in self.checks if (why := check()) is not None), None)

    @reason.setter
    def reason(self, value: str) -> None:
        self.stopping_reason = value
