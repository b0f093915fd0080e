"""When to send, hold, retry or give up (pure: no I/O; the clock is an argument).

* Urgent events (by default ``disconnect``: the supply is cut, also when an overdraft limit
  is reached) go out at once, ignoring quiet hours and rate limits.
* Other events wait out the recipient's quiet hours, read in the recipient's time zone
  (``22:00-07:00`` wraps midnight), and a recipient's rate limit per channel (at most
  ``count`` delivered in any ``per_s`` seconds): a held message goes out when the window
  ends, it is never dropped.
* A failed attempt that may succeed later (timeout, HTTP 5xx or 429, a throttled gateway) is
  retried after ``base_s * factor**(n-1)`` seconds, capped at ``cap_s``, with a deterministic
  +/- ``jitter`` so messages do not retry in lockstep; after ``max_attempts`` attempts, or
  at once for a permanent refusal, the notification has failed for good.
* A notification that failed for good raises a ``notification_failed`` meta-alarm, unless
  it announced a meta-alarm itself: failures about failures end there (no loop).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from connectors.backoff import Backoff, backoff_delay
from connectors.notify.model import META_KIND

DEFAULT_URGENT = frozenset({"disconnect"})
_WINDOW = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")


class Outcome(StrEnum):
    """What a channel adapter says of one attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"      # may succeed later
    FAILED = "failed"    # will not succeed: refused for good


@dataclass(frozen=True)
class RetryPolicy(Backoff):
    """Backoff of failed attempts (connectors.backoff) and how many attempts a
    notification gets."""

    base_s: float = 30.0
    cap_s: float = 1800.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Retry:
    at: datetime
    detail: str


@dataclass(frozen=True)
class Failed:
    detail: str


def after_attempt(policy: RetryPolicy, attempt: int, outcome: Outcome, detail: str,
                  now: datetime, salt: str = "") -> Delivered | Retry | Failed:
    """The state of a notification after its attempt number ``attempt`` ended so."""
    if outcome is Outcome.DELIVERED:
        return Delivered()
    if outcome is Outcome.FAILED:
        return Failed(detail)
    if attempt >= policy.max_attempts:
        return Failed(f"gave up after {attempt} attempt(s); last: {detail}")
    return Retry(now + backoff_delay(policy, attempt, salt), detail)


def raises_meta_alarm(event_kind: str) -> bool:
    """A failed notification raises a meta-alarm, unless it announced one (no loop)."""
    return event_kind != META_KIND


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local time, ``start`` inclusive, ``end`` exclusive; may wrap."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        match = _WINDOW.match(text.strip())
        if match is None:
            raise ValueError(f"quiet hours {text!r}: write HH:MM-HH:MM, e.g. 22:00-07:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if (h1, m1) == (h2, m2):
            raise ValueError(f"quiet hours {text!r}: start and end are the same")
        return cls(time(h1, m1), time(h2, m2))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def _contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def release(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """When the window holding ``now`` ends (an aware instant), or None if none does."""
        local = now.astimezone(zone)
        wall = local.time().replace(tzinfo=None)
        if not self._contains(wall):
            return None
        day = local.date()
        if self.start > self.end and wall >= self.start:
            day += timedelta(days=1)  # a window that wraps ends tomorrow morning
        end = datetime.combine(day, self.end, tzinfo=zone)
        # A wall time skipped by a DST change does not exist: the window ends at the
        # first instant after the gap (normalised through UTC).
        return max(end.astimezone(zone), now)


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` messages to one recipient over one channel in ``per_s`` seconds."""

    count: int
    per_s: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.per_s <= 0:
            raise ValueError("a rate limit needs count >= 1 and per_s > 0")

    def free_at(self, sent: Iterable[datetime], now: datetime) -> datetime | None:
        """None when one more may go now; else when the oldest counted one leaves the window."""
        period = timedelta(seconds=self.per_s)
        recent = sorted(t for t in sent if now - period < t <= now)
        if len(recent) < self.count:
            return None
        return recent[len(recent) - self.count] + period


@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Hold:
    until: datetime
    reason: str


def gate(now: datetime, *, urgent: bool, quiet: QuietHours | None, zone: ZoneInfo,
         limit: RateLimit | None, sent: Iterable[datetime]) -> Send | Hold:
    """Whether a message may go now; urgent ones always may."""
    if urgent:
        return Send()
    if quiet is not None and (until := quiet.release(now, zone)) is not None:
        local = until.astimezone(zone)
        return Hold(until, f"quiet hours {quiet} ({zone.key}) until {local:%Y-%m-%d %H:%M}")
    if limit is not None and (free := limit.free_at(sent, now)) is not None:
        return Hold(free, f"rate limit: {limit.count} per {limit.per_s:g}s for this recipient")
    return Send()
