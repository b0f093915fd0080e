"""Exponential backoff with a deterministic jitter: when the dispatcher and the notifier try a
meter or a gateway again (pure; reconnect loops use runtime/retry.py).

The delay after failed attempt ``n`` (1-based) is ``base_s * factor**(n-1)``, capped at
``cap_s``, spread by +/- ``jitter`` of itself with a fraction derived from a salt (e.g. the
command or notification id) and the attempt, so a fleet of retries does not run in
lockstep and a retry after a restart waits the same as it would have.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Backoff:
    base_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 60.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.factor < 1 or self.cap_s < self.base_s:
            raise ValueError("backoff needs base_s > 0, factor >= 1 and cap_s >= base_s")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")


def backoff_delay(policy: Backoff, attempt: int, salt: str = "") -> timedelta:
    """Delay after failed attempt number ``attempt`` (1-based), capped and jittered."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    raw = min(policy.cap_s, policy.base_s * policy.factor ** min(attempt - 1, 64))
    digest = hashlib.sha256(f"{salt}:{attempt}".encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64  # [0, 1)
    spread = raw * policy.jitter * (2 * unit - 1)
    return timedelta(seconds=max(0.0, min(policy.cap_s, raw + spread)))
