"""Alarm and meter-event payloads as the pipeline writes them, and refusals naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connectors.notify.ids import meta_alarm_id, notification_id
from connectors.notify.model import parse, parse_alarm, parse_meter_event
from contracts.errors import PayloadError
from contracts.messages import as_dict
from contracts.topics import ALARMS, METER_EVENTS
from pipeline import payloads
from pipeline.billing.wallet_model import LowBalanceAlarm, Refusal, SupplyDecision

AT = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)


def raw(body: object) -> bytes:
    return json.dumps(body).encode()


def test_pipeline_payloads_parse() -> None:
    low = as_dict(payloads.low_balance(LowBalanceAlarm("alarm-1", "A1", 2, 2000, 1990, 7, AT)))
    event = parse(ALARMS, raw(low))
    assert (event.kind, event.level, event.balance_fen, event.threshold_fen, event.at) == \
        ("low_balance", 2, 1990, 2000, AT)
    cut = as_dict(payloads.supply(SupplyDecision("supply-1", "A1", "disconnect",
                                                 "balance exhausted", -5, AT)))
    assert parse_alarm(raw(cut)).balance_fen == -5
    refused = as_dict(payloads.refusal(Refusal("A1", "k1", "insufficient_balance", "too much"), AT))
    assert parse_alarm(raw(refused)).detail.startswith("insufficient_balance")
    offline = as_dict(payloads.meter_event("M1", "offline", AT, "silent"))
    event = parse(METER_EVENTS, raw(offline))
    assert (event.meter_id, event.kind, event.account_id) == ("M1", "offline", None)


def test_added_fields_are_ignored() -> None:
    low = as_dict(payloads.low_balance(LowBalanceAlarm("alarm-1", "A1", 1, 5000, 4990, 3, AT)))
    assert parse_alarm(raw({**low, "new_field": 1})).level == 1


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "not valid JSON"),
    (b"[1]", "expected a JSON object"),
    ({"account_id": "A1", "kind": "disconnect", "at": "2026-07-01T02:00:00+00:00"},
     "field alarm_id: missing"),
    ({"alarm_id": "a", "account_id": "A1", "kind": "disconnect", "at": "2026-07-01T02:00:00"},
     "field at: timestamp has no UTC offset"),
    ({"alarm_id": "a", "account_id": "A1", "kind": "disconnect", "at": "yesterday"},
     "field at: 'yesterday' is not an ISO 8601 timestamp"),
    ({"alarm_id": "a", "account_id": "A1", "kind": "low_balance", "level": 4,
      "threshold_fen": 1, "balance_fen": 1, "at": "2026-07-01T02:00:00+00:00"},
     "field level: 4 is not an alarm level"),
    ({"alarm_id": "a", "account_id": "A1", "kind": "low_balance", "level": 1,
      "threshold_fen": 1000, "balance_fen": 9.9, "at": "2026-07-01T02:00:00+00:00"},
     "field balance_fen: 9.9 is not an integer number of fen"),
    ({"alarm_id": "a", "account_id": "A 1", "kind": "disconnect",
      "at": "2026-07-01T02:00:00+00:00"}, "field account_id"),
    ({"alarm_id": "a", "account_id": "A1", "kind": "Disconnect!",
      "at": "2026-07-01T02:00:00+00:00"}, "field kind"),
    ({"alarm_id": "a", "account_id": "A1", "kind": "notification_failed",
      "at": "2026-07-01T02:00:00+00:00"}, "field notification_id: missing"),
])
def test_malformed_alarms_name_the_problem(body: object, reason: str) -> None:
    data = body if isinstance(body, bytes) else raw(body)
    with pytest.raises(PayloadError) as caught:
        parse_alarm(data)
    assert reason in caught.value.reason


def test_malformed_meter_events() -> None:
    with pytest.raises(PayloadError, match="field meter_id: missing"):
        parse_meter_event(raw({"event_id": "e", "kind": "offline", "at": AT.isoformat()}))
    with pytest.raises(PayloadError, match="empty message"):
        parse_meter_event(None)


def test_meta_alarm_without_account() -> None:
    event = parse_alarm(raw({"alarm_id": "m", "account_id": "", "kind": "notification_failed",
                             "at": AT.isoformat(), "notification_id": "notification-1"}))
    assert event.account_id is None and event.notification_id == "notification-1"
    with_meter = parse_alarm(raw({"alarm_id": "m", "account_id": "", "meter_id": "M1",
                                  "kind": "notification_failed", "at": AT.isoformat(),
                                  "notification_id": "notification-1"}))
    assert with_meter.meter_id == "M1"


def test_ids_are_deterministic_and_distinct() -> None:
    a = notification_id("alarm-1", "sms", "13800000001")
    assert a == notification_id("alarm-1", "sms", "13800000001")
    others = {notification_id("alarm-2", "sms", "13800000001"),
              notification_id("alarm-1", "email", "13800000001"),
              notification_id("alarm-1", "sms", "13800000002")}
    assert a not in others and len(others) == 3
    assert meta_alarm_id(a) == meta_alarm_id(a) != meta_alarm_id(next(iter(others)))
