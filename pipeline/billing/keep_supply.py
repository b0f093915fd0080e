"""Keep-supply windows: times when a due disconnect is deferred, not carried out.

A window applies during configured night hours (local time, may wrap midnight), on
holidays of the account's calendar (whole local days), or while an operator's manual
keep-supply flag is set. The deferral lasts until no window applies any more.

``manual`` is the operator's flag kept with the account's configuration (``accounts.
keep_supply``), so the operator API sets it and every worker picks it up on its next
configuration reload; the wallet's own ``SetKeepSupply`` command sets the same kind of flag
in the wallet state. Either one defers a due cut without an end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.billing.bands import Window, parse_window
from pipeline.billing.instants import utc

_MAX_HOPS = 800  # more than two years of back-to-back nights and holidays


@dataclass(frozen=True, slots=True)
class KeepSupplyPolicy:
    """Night hours ("HH:MM-HH:MM") and holidays in the account's zone; the manual flag."""

    timezone: str = "Asia/Shanghai"
    night: str | None = None
    holidays: frozenset[date] = field(default_factory=frozenset)
    manual: bool = False

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)
        if self.night is not None:
            parse_window(self.night)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _night(self) -> Window | None:
        return None if self.night is None else parse_window(self.night)

    def _hop(self, instant: datetime) -> datetime | None:
        """The end of the window that holds ``instant``, or None if none holds it."""
        local = instant.astimezone(self.zone)
        day = local.date()
        if day in self.holidays:
            return utc(datetime.combine(day + timedelta(days=1), time(), tzinfo=self.zone))
        night = self._night()
        minute = local.hour * 60 + local.minute
        if night is None or minute not in night.minutes():
            return None
        end_day = day + timedelta(days=1) if night.end <= minute else day
        midnight = datetime.combine(end_day, time(), tzinfo=self.zone)
        return utc(midnight + timedelta(minutes=night.end))

    def window_end(self, now: datetime) -> datetime | None:
        """When the windows holding ``now`` end (chained), or None if none holds it."""
        end: datetime | None = None
        cursor = now
        for _ in range(_MAX_HOPS):
            hop = self._hop(cursor)
            if hop is None:
                break
            end = cursor = hop
        return end

    def to_dict(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "night": self.night,
            "holidays": sorted(d.isoformat() for d in self.holidays),
            "manual": self.manual,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeepSupplyPolicy:
        return cls(
            str(data.get("timezone") or "Asia/Shanghai"),
            data.get("night"),
            frozenset(date.fromisoformat(d) for d in data.get("holidays", [])),
            bool(data.get("manual", False)),
        )
