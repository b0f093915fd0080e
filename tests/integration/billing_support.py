"""Places, accounts and consumption for the property-billing tests, on the real stack."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg

from contracts.messages import RatedInterval, RatedLineBody, encode
from contracts.money import COST_PLACES, decimal_text, round_half_up
from contracts.topics import RATED_INTERVALS
from meterflow.settings import Settings
from services.outbox import kafka_producer

SH = ZoneInfo("Asia/Shanghai")


def tag(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def floor_with_rooms(db: psycopg.Connection, t: str, areas: Sequence[str | None]
                     ) -> tuple[str, list[str]]:
    """A site in Shanghai's zone with one building and floor, and rooms of these areas."""
    site = f"{t}-site"
    db.execute("INSERT INTO sites (site_id, name, timezone) VALUES (%s, %s, 'Asia/Shanghai')",
               (site, f"Park {t}"))
    db.execute("INSERT INTO buildings (building_id, site_id, name) VALUES (%s, %s, 'A')",
               (f"{t}-A", site))
    db.execute("INSERT INTO floors (floor_id, building_id, level) VALUES (%s, %s, 3)",
               (f"{t}-F3", f"{t}-A"))
    rooms = []
    for i, area in enumerate(areas, 1):
        room = f"{t}-R3{i:02d}"
        db.execute("INSERT INTO rooms (room_id, floor_id, name, area_m2) VALUES (%s, %s, %s, "
                   "%s)", (room, f"{t}-F3", f"3{i:02d}", area))
        rooms.append(room)
    return site, rooms


def account(db: psycopg.Connection, account_id: str, room: str | None,
            postpaid: bool = False, meter: str | None = None,
            commodity: str = "electricity") -> str:
    db.execute("INSERT INTO accounts (account_id, name, billing_mode, room_id) VALUES "
               "(%s, %s, %s, %s)", (account_id, f"Tenant {account_id}",
                                    "postpaid" if postpaid else "prepaid", room))
    if meter is not None:
        db.execute("INSERT INTO meters (meter_id, commodity, protocol, account_id, room_id) "
                   "VALUES (%s, %s, 'mqtt', %s, %s)", (meter, commodity, account_id, room))
    return account_id


def previous_month(today: date) -> tuple[date, date]:
    first = date(today.year, today.month, 1)
    start = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    return start, first


#: One day of an office on the commercial TOU tariff: (band, local start hour, hours,
#: kWh, yuan per kWh).
TOU_DAY = (("valley", 0, 8, Decimal("16.0"), Decimal("0.3245")),
           ("flat", 8, 2, Decimal("22.5"), Decimal("0.7204")),
           ("peak", 10, 2, Decimal("38.5"), Decimal("1.1123")),
           ("sharp", 12, 2, Decimal("20.25"), Decimal("1.3290")),
           ("peak", 14, 5, Decimal("61.0"), Decimal("1.1123")),
           ("flat", 19, 5, Decimal("18.0"), Decimal("0.7204")))


def tou_month(meter: str, account_id: str, start: date, end: date) -> list[RatedInterval]:
    """Rated intervals of every day of [start, end), as the meter stage would send them."""
    found = []
    day = start
    while day < end:
        for band, hour, hours, units, price in TOU_DAY:
            t0 = datetime(day.year, day.month, day.day, hour, tzinfo=SH)
            t1 = t0 + timedelta(hours=hours)
            cost = round_half_up(units * price, COST_PLACES)
            found.append(RatedInterval(
                interval_id=f"rated-{meter}-{t1.astimezone(UTC):%Y%m%d%H}", meter_id=meter,
                account_id=account_id, tariff_id="gd-commercial-tou",
                start=t0.isoformat(), end=t1.isoformat(), units=decimal_text(units),
                cost=decimal_text(cost),
                lines=[RatedLineBody(band=band, step=None, price=decimal_text(price),
                                     units=decimal_text(units), amount=decimal_text(cost))],
                surcharges=[]))
        day += timedelta(days=1)
    return found


def produce_rated(stack: Settings, intervals: Sequence[RatedInterval]) -> None:
    """Send rated intervals to the wallet (key: the account), acknowledged by the broker."""
    producer = kafka_producer(stack.bootstrap_servers)
    try:
        for interval in intervals:
            assert interval.account_id is not None
            producer.send(RATED_INTERVALS, key=interval.account_id.encode(),
                          value=encode(interval))
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)
