"""The report time zone: days and months of reports are local to the site of the meter or
account (``sites.timezone``, sql/0004_property.sql); one in no site reports in the
default zone, the setting ``METERFLOW_REPORT_TIMEZONE`` (docs/operations.md), which
reaches SQL through ``report_settings`` (sql/0010_site_time_zones.sql)."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_REPORT_TIMEZONE = "Asia/Shanghai"


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The zone of an IANA name, parsed once."""
    return ZoneInfo(name)


DEFAULT_REPORT_ZONE = zone(DEFAULT_REPORT_TIMEZONE)
