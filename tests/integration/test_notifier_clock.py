"""Quiet hours and rate limits over the real stack and gateways, with the notifier's loops
driven in-process by an injected clock (a night and a morning without waiting for them).

The clock stands in 2020, so rows of other tests (due at today's times) are never claimed
here; Kafka, PostgreSQL and the stand-in SMS gateway are the real ones.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from connectors.notify.config import parse_config
from connectors.notify.rules import Rule
from connectors.notify.service import Delivery, Intake, KafkaFeed, build_channels
from connectors.notify.store import add_rule, list_notifications
from connectors.publisher import make_producer
from contracts import messages
from contracts.topics import ALARMS, METER_EVENTS
from meterflow.settings import Settings
from pipeline import payloads
from runtime.consumer import Record
from tests.integration.conftest import wait_for
from tests.integration.notify_support import (
    SECRETS,
    Gateways,
    config_yaml,
    http_gateways,
    make_place,
    wallet_alarms,
)

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def gateways() -> Iterator[Gateways]:
    server, found = http_gateways()
    yield found
    server.shutdown()
    server.server_close()


class Loops:
    """The notifier's intake and delivery, stepped by the test."""

    def __init__(self, stack: Settings, clock: Clock, **config: Any) -> None:
        data = json.loads(config_yaml(Path("unused.pem")))
        data.update(config)
        self.config = parse_config(data)
        channels = build_channels(self.config, SECRETS, clock)
        self.stack = stack
        self.intake = Intake(self.config, channels, clock)
        self.delivery = Delivery(self.config, channels,
                                 lambda: psycopg.connect(stack.dsn, autocommit=True), clock)
        self.feed = KafkaFeed(stack.bootstrap_servers, f"clock-{uuid.uuid4().hex[:8]}",
                              start="latest")
        self.conn = psycopg.connect(stack.dsn, autocommit=True)

    def take(self, count: int) -> list[Record]:
        """Read ``count`` records, store their notifications, commit."""
        got: list[Record] = []

        def more() -> bool:
            got.extend(self.feed.poll(timeout_ms=200))
            return len(got) >= count

        wait_for(more, 30, f"{count} records")
        assert len(got) == count
        assert self.intake.process(self.conn, got) == []
        self.feed.commit(got)
        return got

    def close(self) -> None:
        self.delivery.close()
        self.feed.close()
        self.conn.close()


@pytest.fixture()
def producer(stack: Settings) -> Iterator[Any]:
    made = make_producer(stack.bootstrap_servers)
    yield made
    made.close()


def send(producer: Any, topic: str, key: str, payload: dict[str, Any]) -> None:
    producer.send(topic, key=key.encode(), value=json.dumps(payload).encode()).get(30)


def test_quiet_hours_hold_level_1_until_morning_and_let_a_disconnection_through(
        stack: Settings, db: psycopg.Connection, gateways: Gateways, producer: Any) -> None:
    clock = Clock(datetime(2020, 1, 6, 2, 30, tzinfo=SHANGHAI))
    loops = Loops(stack, clock)
    try:
        t = uuid.uuid4().hex[:8]
        phone = f"1330000{int(t, 16) % 10000:04d}"
        place = make_place(db, t, phone=phone)
        add_rule(db, Rule("quiet-" + t, "account", place.account_id,
                          ("low_balance", "disconnect"), "sms", "customer",
                          quiet_hours="22:00-07:00"))
        # 60 yuan, then 15 (level 1), then 45 more: levels 2 and 3 and the cut at once
        alarms = wallet_alarms(place.account_id, ["15", "45"], start=clock.now)
        assert [(a["kind"], a["level"]) for a in alarms] == [
            ("low_balance", 1), ("low_balance", 2), ("low_balance", 3), ("disconnect", None)]
        for alarm in alarms:
            send(producer, ALARMS, place.account_id, alarm)
        loops.take(4)

        assert loops.delivery.run_once() == 4
        sent = [f for f in gateways.sms if f["PhoneNumbers"] == phone]
        assert [f["TemplateCode"] for f in sent] == ["SMS_CUT"]
        found = {n["level"]: n for n in list_notifications(db, account_id=place.account_id)}
        morning = datetime(2020, 1, 6, 7, 0, tzinfo=SHANGHAI)
        for level in (1, 2, 3):
            assert found[level]["status"] == "held"
            assert datetime.fromisoformat(found[level]["next_attempt_at"]) == morning
            assert found[level]["last_error"] == \
                "quiet hours 22:00-07:00 (Asia/Shanghai) until 2020-01-06 07:00"
            assert found[level]["attempts_log"] == []
        assert found[None]["status"] == "delivered"

        clock.now = morning - timedelta(minutes=1)
        assert loops.delivery.run_once() == 0
        clock.now = morning
        assert loops.delivery.run_once() == 3
        sent = [f for f in gateways.sms if f["PhoneNumbers"] == phone]
        assert [(f["TemplateCode"], json.loads(f["TemplateParam"]).get("level"))
                for f in sent] == [("SMS_CUT", None), ("SMS_LOW", "1"), ("SMS_LOW", "2"),
                                   ("SMS_LOW", "3")]
        done = list_notifications(db, account_id=place.account_id)
        assert {n["status"] for n in done} == {"delivered"}
        assert all(datetime.fromisoformat(n["delivered_at"]) == morning
                   for n in done if n["level"] is not None)
    finally:
        loops.close()


def test_rate_limit_holds_the_third_message_and_lets_urgent_ones_through(
        stack: Settings, db: psycopg.Connection, gateways: Gateways, producer: Any) -> None:
    start = datetime(2020, 1, 7, 10, 0, tzinfo=SHANGHAI)
    clock = Clock(start)
    loops = Loops(stack, clock, rate_limits={"sms": {"count": 2, "per_s": 3600}})
    try:
        t = uuid.uuid4().hex[:8]
        phone = f"1320000{int(t, 16) % 10000:04d}"
        place = make_place(db, t, phone=phone)
        add_rule(db, Rule("rate-" + t, "account", place.account_id, ("offline", "disconnect"),
                          "sms", "customer"))
        for minute in range(3):
            send(producer, METER_EVENTS, place.meter_id, messages.as_dict(payloads.meter_event(
                place.meter_id, "offline", start + timedelta(minutes=minute), "silent")))
        loops.take(3)
        assert loops.delivery.run_once() == 3
        assert len([f for f in gateways.sms if f["PhoneNumbers"] == phone]) == 2
        (held,) = list_notifications(db, account_id=place.account_id, status="held")
        assert held["last_error"] == "rate limit: 2 per 3600s for this recipient"
        assert datetime.fromisoformat(held["next_attempt_at"]) == start + timedelta(hours=1)

        clock.now = start + timedelta(minutes=5)
        (cut,) = wallet_alarms(place.account_id, ["60"], start=clock.now)[-1:]
        assert cut["kind"] == "disconnect"
        send(producer, ALARMS, place.account_id, cut)
        loops.take(1)
        assert loops.delivery.run_once() == 1  # urgent: not held by the rate limit
        codes = [f["TemplateCode"] for f in gateways.sms if f["PhoneNumbers"] == phone]
        assert codes == ["SMS_OFF", "SMS_OFF", "SMS_CUT"]

        clock.now = start + timedelta(hours=1)
        assert loops.delivery.run_once() == 1
        codes = [f["TemplateCode"] for f in gateways.sms if f["PhoneNumbers"] == phone]
        assert codes == ["SMS_OFF", "SMS_OFF", "SMS_CUT", "SMS_OFF"]
        assert {n["status"] for n in list_notifications(db, account_id=place.account_id)} == \
            {"delivered"}
    finally:
        loops.close()
