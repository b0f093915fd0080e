"""What happens to a command after each delivery attempt (pure: no I/O, no clock).

* ``APPLIED``: the meter confirmed -> final ``applied``.
* ``REFUSED``: the meter answered but refused (wrong password, exception response, its own
  ``failed`` ack) -> retried up to ``max_refusals`` times, then final ``failed``.
* ``IMPOSSIBLE``: the command can never be delivered (unknown meter, no relay, unsupported
  protocol) -> final ``failed`` at once.
* ``UNREACHABLE``: no answer (connection refused, timeout, meter silent) -> kept queued and
  tried again after an exponential backoff capped at ``cap_s``, until the deadline.

Before every attempt a command past its deadline becomes final ``expired``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from connectors.backoff import Backoff, backoff_delay
from contracts.commands import Command, Status


class Outcome(StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    IMPOSSIBLE = "impossible"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class RetryPolicy(Backoff):
    """Backoff of unreachable meters (connectors.backoff), the time an attempt may take and
    how many refusals a command gets; jitter is deterministic per command and attempt."""

    base_s: float = 1.0
    cap_s: float = 60.0
    attempt_timeout_s: float = 10.0
    max_refusals: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.attempt_timeout_s <= 0 or self.max_refusals < 1:
            raise ValueError("attempt_timeout_s must be > 0 and max_refusals >= 1")


@dataclass(frozen=True)
class Final:
    status: Status
    detail: str


@dataclass(frozen=True)
class Retry:
    at: datetime
    detail: str


@dataclass
class CommandState:
    """One queued command and its attempts so far."""

    command: Command
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    attempts: int = 0
    refusals: int = 0
    last_detail: str = ""

    def expired(self, now: datetime) -> Final | None:
        if now < self.command.deadline:
            return None
        tried = f" after {self.attempts} attempt(s)" if self.attempts else " before any attempt"
        last = f"; last: {self.last_detail}" if self.last_detail else ""
        return Final("expired", f"not confirmed by the deadline{tried}{last}")

    def attempt_timeout(self, now: datetime) -> float:
        """Seconds the next attempt may take: the policy's, but never past the deadline."""
        left = (self.command.deadline - now).total_seconds()
        return max(0.05, min(self.policy.attempt_timeout_s, left))

    def started(self) -> int:
        self.attempts += 1
        return self.attempts

    def after(self, outcome: Outcome, detail: str, now: datetime) -> Final | Retry:
        self.last_detail = detail
        if outcome is Outcome.APPLIED:
            return Final("applied", detail)
        if outcome is Outcome.IMPOSSIBLE:
            return Final("failed", detail)
        if outcome is Outcome.REFUSED:
            self.refusals += 1
            if self.refusals >= self.policy.max_refusals:
                return Final("failed", f"refused {self.refusals} time(s): {detail}")
        when = now + backoff_delay(self.policy, self.attempts, self.command.command_id)
        if when >= self.command.deadline:
            when = self.command.deadline  # one last look at the deadline, then expired
        return Retry(when, detail)
