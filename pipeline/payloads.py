"""Builders of the pipeline's payloads: billing values into the topic records of
contracts/messages.py (schemas in docs/contracts.md)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import cast

from contracts.bands import BANDS
from contracts.commands import Action, Command
from contracts.ids import derive_id, instant_key
from contracts.messages import (
    AcceptedReading,
    AlarmMessage,
    IntervalBody,
    LedgerMessage,
    MeterEvent,
    RatedInterval,
    RatedLineBody,
    RejectedReading,
    SurchargeBody,
)
from contracts.money import decimal_text, fraction_text, round_half_up
from contracts.raw_reading import RawReading
from pipeline.billing.rating import Rating
from pipeline.billing.supply import CommandNotice, MeterCommand
from pipeline.billing.validation import Interval, Rejected
from pipeline.billing.wallet_model import LedgerEntry, LowBalanceAlarm, Refusal, SupplyDecision

UNITS_PLACES = 6
AMOUNT_PLACES = 10


def accepted(reading: RawReading, interval: Interval | None) -> AcceptedReading:
    body = None
    if interval is not None:
        band_units = interval.band_units
        body = IntervalBody(
            start=interval.start.isoformat(), end=interval.end.isoformat(),
            units=decimal_text(interval.units),
            band_units=None if band_units is None
            else {b: decimal_text(u) for b, u in band_units.items()},
            rollover=interval.rollover)
    return AcceptedReading(
        meter_id=reading.meter_id, ts=reading.ts.isoformat(), value=decimal_text(reading.value),
        unit=reading.unit,
        registers={b: decimal_text(v) for b in BANDS if (v := getattr(reading, b)) is not None},
        source=reading.source, interval=body)


def rejected(outcome: Rejected, raw: bytes) -> RejectedReading:
    return RejectedReading(
        rejection_id=outcome.id, meter_id=outcome.reading.meter_id,
        ts=outcome.reading.ts.isoformat(), value=decimal_text(outcome.reading.value),
        reason=outcome.reason, detail=outcome.detail, raw_b64=base64.b64encode(raw).decode())


def meter_event(meter_id: str, kind: str, at: datetime, detail: str = "") -> MeterEvent:
    return MeterEvent(event_id=derive_id(kind, meter_id, instant_key(at)), meter_id=meter_id,
                      kind=kind, at=at.isoformat(), detail=detail)


def rated(interval_id: str, meter_id: str, account_id: str | None,
          rating: Rating) -> RatedInterval:
    units = rating.units
    return RatedInterval(
        interval_id=interval_id, meter_id=meter_id, account_id=account_id,
        tariff_id=rating.tariff_id, start=rating.start.isoformat(), end=rating.end.isoformat(),
        units=fraction_text(units) if units.denominator == 1
        else decimal_text(round_half_up(units, UNITS_PLACES)),
        cost=decimal_text(rating.cost),
        lines=[RatedLineBody(band=line.band, step=line.step, price=decimal_text(line.price),
                             units=decimal_text(round_half_up(line.units, UNITS_PLACES)),
                             amount=decimal_text(round_half_up(line.amount, AMOUNT_PLACES)))
               for line in rating.lines],
        surcharges=[SurchargeBody(name=s.name, price=decimal_text(s.price),
                                  units=decimal_text(round_half_up(s.units, UNITS_PLACES)),
                                  amount=decimal_text(round_half_up(s.amount, AMOUNT_PLACES)))
                    for s in rating.surcharges])


def ledger(entry: LedgerEntry, meter_id: str | None) -> LedgerMessage:
    return LedgerMessage(
        entry_id=entry.entry_id, account_id=entry.account_id, seq=entry.seq,
        at=entry.at.isoformat(), kind=entry.kind, key=entry.key, amount_fen=entry.amount_fen,
        balance_fen=entry.balance_fen, meter_id=meter_id, detail=entry.detail)


def low_balance(alarm: LowBalanceAlarm) -> AlarmMessage:
    return AlarmMessage(
        alarm_id=alarm.alarm_id, account_id=alarm.account_id, kind="low_balance",
        level=alarm.level, threshold_fen=alarm.threshold_fen, balance_fen=alarm.balance_fen,
        at=alarm.at.isoformat(), detail="")


def supply(decision: SupplyDecision) -> AlarmMessage:
    """Supply decisions are alarms too: disconnect, reconnect, deferred, cancelled."""
    detail = decision.reason if decision.until is None \
        else f"{decision.reason} until {decision.until.isoformat()}"
    return AlarmMessage(
        alarm_id=decision.decision_id, account_id=decision.account_id, kind=decision.action,
        level=None, threshold_fen=None, balance_fen=decision.balance_fen,
        at=decision.at.isoformat(), detail=detail)


def refusal(refused: Refusal, at: datetime) -> AlarmMessage:
    return AlarmMessage(
        alarm_id=derive_id("refused", refused.account_id, refused.key),
        account_id=refused.account_id, kind="refused", level=None, threshold_fen=None,
        balance_fen=None, at=at.isoformat(),
        detail=f"{refused.reason}: {refused.detail} (key {refused.key})")


def command_notice(account_id: str, notice: CommandNotice, balance_fen: int) -> AlarmMessage:
    """``command_retry`` and ``command_abandoned``: operators see a command not confirmed."""
    return AlarmMessage(
        alarm_id=notice.notice_id, account_id=account_id, kind=notice.kind, level=None,
        threshold_fen=None, balance_fen=balance_fen, at=notice.at.isoformat(),
        detail=notice.detail)


def command(made: MeterCommand, reason: str) -> Command:
    """The billing core's command as the topic's model; the core made it valid, so it is
    not checked again (its text goes out as written)."""
    return Command.model_construct(
        command_id=made.command_id, meter_id=made.meter_id, action=cast(Action, made.action),
        issued_at=made.issued_at, deadline=made.deadline, reason=reason[:500])
