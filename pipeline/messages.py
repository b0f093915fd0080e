"""Typed payloads of the pipeline's topics (schemas in docs/contracts.md) and their codecs.

Every payload is JSON: money in integer fen, quantities and exact costs as decimal text,
instants as ISO 8601 with an offset, and a deterministic id. The records are
``msgspec.Struct``s, encoded and decoded without going through dicts; decimal and time
fields are carried as text exactly as written, and parsed where they are used.
Builders turn billing values into payloads; readers decode the inputs of the two stages.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from pipeline.billing.ids import derive_id, instant_key
from pipeline.billing.money import decimal_text, fraction_text, round_half_up
from pipeline.billing.rating import Rating
from pipeline.billing.supply import CommandNotice, MeterCommand
from pipeline.billing.validation import Interval, Rejected
from pipeline.billing.wallet_model import LedgerEntry, LowBalanceAlarm, Refusal, SupplyDecision
from pipeline.raw_reading import BANDS, RawReading

UNITS_PLACES = 6
AMOUNT_PLACES = 10


class Payload(msgspec.Struct, kw_only=True):
    """Base of every payload: keyword construction, fields in declaration order."""


# --- meter stage outputs -----------------------------------------------------------------


class IntervalBody(Payload):
    start: str
    end: str
    units: str
    band_units: dict[str, str] | None
    rollover: bool


class AcceptedReading(Payload):
    """``meterflow.readings.accepted`` (key meter): a reading and the interval it closes."""

    meter_id: str
    ts: str
    value: str
    unit: str
    registers: dict[str, str]
    source: str
    interval: IntervalBody | None


class RejectedReading(Payload):
    """``meterflow.readings.rejected`` (key meter): the stable reason code and raw bytes."""

    rejection_id: str
    meter_id: str
    ts: str
    value: str
    reason: str
    detail: str
    raw_b64: str


class MeterEvent(Payload):
    """``meterflow.meter.events`` (key meter): online, offline, unrated, meter_stopped."""

    event_id: str
    meter_id: str
    kind: str
    at: str
    detail: str = ""


class RatedLineBody(Payload):
    band: str | None
    step: int | None
    price: str
    units: str
    amount: str


class SurchargeBody(Payload):
    name: str
    price: str
    units: str
    amount: str


class RatedInterval(Payload):
    """``meterflow.intervals.rated`` (key account): units and money per band and step."""

    interval_id: str
    meter_id: str
    account_id: str | None
    tariff_id: str
    start: str
    end: str
    units: str
    cost: str
    lines: list[RatedLineBody]
    surcharges: list[SurchargeBody]


# --- wallet stage outputs ----------------------------------------------------------------


class LedgerMessage(Payload):
    """``meterflow.ledger`` (key account): one append-only entry, signed fen."""

    entry_id: str
    account_id: str
    seq: int
    at: str
    kind: str
    key: str
    amount_fen: int
    balance_fen: int
    meter_id: str | None
    detail: str


class BalanceMessage(Payload):
    """``meterflow.balances`` (compacted, key account): the latest state of an account.

    ``supply`` is the wallet's decision; ``supply_state`` says whether the meters
    confirmed it; ``wake_at`` is when the account next needs a tick (a deferred cut or a
    command to issue again), read by the clock (pipeline/clock.py).
    """

    account_id: str
    balance_fen: int
    alarm_level: int
    supply: str
    supply_state: str
    seq: int
    disconnect_pending: bool
    deferred_until: str | None
    wake_at: str | None
    updated_at: str


class AlarmMessage(Payload):
    """``meterflow.alarms`` (key account): low balance, supply decisions, refusals and
    the command notices for operators."""

    alarm_id: str
    account_id: str
    kind: str
    level: int | None
    threshold_fen: int | None
    balance_fen: int | None
    at: str
    detail: str


class CommandMessage(Payload):
    """``meterflow.commands`` (key meter): a disconnect or reconnect for one meter."""

    command_id: str
    meter_id: str
    action: str
    issued_at: str
    deadline: str
    reason: str


# --- inputs ------------------------------------------------------------------------------


class PaymentMessage(Payload):
    """``meterflow.payments`` (key account), written by the outbox relay."""

    idempotency_key: str
    account_id: str
    kind: str
    amount_fen: int
    at: str
    payment_id: str = ""
    operator: str = ""
    note: str = ""


class CommandAck(Payload):
    """``meterflow.commands.acks`` (key meter): the dispatcher's final word on a command."""

    command_id: str
    meter_id: str
    status: str
    at: str
    detail: str = ""
    attempts: int = 0


class MeterTick(Payload):
    """``meterflow.meter.ticks`` (key meter, internal): look at this meter's silence."""

    at: str


class WalletSignal(Payload):
    """``meterflow.wallet.signals`` (key account, internal): a clock tick (``kind`` tick:
    a deferred cut or a command retry may be due) or a command's outcome forwarded from
    the meter stage (``kind`` command_outcome)."""

    kind: str
    at: str
    command_id: str | None = None
    meter_id: str | None = None
    status: str | None = None
    detail: str = ""


_ENCODER = msgspec.json.Encoder()
encode = _ENCODER.encode


class MessageError(ValueError):
    """A payload that does not fit its topic's schema; ``reason`` names what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


T = TypeVar("T", bound=msgspec.Struct)
_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}


def read(kind: type[T], raw: bytes | None) -> T:
    """Decode ``raw`` as ``kind``; MessageError naming the field and the problem."""
    if not raw:
        raise MessageError("empty message")
    dec = _DECODERS.get(kind)
    if dec is None:
        dec = _DECODERS[kind] = msgspec.json.Decoder(kind)
    try:
        value: T = dec.decode(raw)
    except msgspec.ValidationError as exc:
        raise MessageError(str(exc).replace("`$.", "field `")) from None
    except msgspec.DecodeError as exc:
        raise MessageError(f"not valid JSON: {exc}") from None
    return value


# --- builders ----------------------------------------------------------------------------


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


def command(made: MeterCommand, reason: str) -> CommandMessage:
    return CommandMessage(
        command_id=made.command_id, meter_id=made.meter_id, action=made.action,
        issued_at=made.issued_at.isoformat(), deadline=made.deadline.isoformat(),
        reason=reason[:500])


def as_dict(payload: Payload) -> dict[str, Any]:
    """A payload as plain JSON-ready values (for tests, logs and the API)."""
    body: dict[str, Any] = msgspec.to_builtins(payload)
    return body
