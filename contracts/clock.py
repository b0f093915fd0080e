"""The injectable clock: every component takes ``now`` as a ``Clock`` and defaults to
``utc_now``, so tests drive time themselves (docs/architecture.md, principles)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)
