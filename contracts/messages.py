"""Typed payloads of the pipeline's topics (schemas in docs/contracts.md) and their codecs.

Every payload is JSON: money in integer fen, quantities and exact costs as decimal text,
instants as ISO 8601 with an offset, and a deterministic id. The records are
``msgspec.Struct``s, encoded and decoded without going through dicts; decimal and time
fields are carried as text exactly as written, and parsed where they are used.
``read`` decodes a topic's value; the builders that turn billing values into payloads
are in pipeline/payloads.py. The other topics have their model beside this one: raw
readings (``raw_reading.py``), commands and acknowledgements (``commands.py``), dead
letters (``dead_letter.py``).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from contracts.errors import PayloadError


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


class AlarmMessage(Payload, omit_defaults=True):
    """``meterflow.alarms`` (key account): low balance, supply decisions, refusals and
    the command notices for operators; the notifier's ``notification_failed`` alarm adds
    the notification and, when the event was a meter's, the meter (left out when None)."""

    alarm_id: str
    account_id: str
    kind: str
    level: int | None
    threshold_fen: int | None
    balance_fen: int | None
    at: str
    detail: str
    meter_id: str | None = None
    notification_id: str | None = None


# --- inputs ------------------------------------------------------------------------------


class PaymentMessage(Payload):
    """``meterflow.payments`` (key account), written by the outbox relay: a top-up,
    refund or adjustment, or a deduction (``charge_item``, ``apportionment``; amount > 0
    is taken from the balance; ``may_cut`` False: it never cuts supply)."""

    idempotency_key: str
    account_id: str
    kind: str
    amount_fen: int
    at: str
    payment_id: str = ""
    operator: str = ""
    note: str = ""
    may_cut: bool = True


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


T = TypeVar("T", bound=msgspec.Struct)
_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}


def read(kind: type[T], raw: bytes | None) -> T:
    """Decode ``raw`` as ``kind``; PayloadError naming the field and the problem."""
    if not raw:
        raise PayloadError("empty message")
    dec = _DECODERS.get(kind)
    if dec is None:
        dec = _DECODERS[kind] = msgspec.json.Decoder(kind)
    try:
        value: T = dec.decode(raw)
    except msgspec.ValidationError as exc:
        raise PayloadError(str(exc).replace("`$.", "field `")) from None
    except msgspec.DecodeError as exc:
        raise PayloadError(f"not valid JSON: {exc}") from None
    return value


def as_dict(payload: Payload) -> dict[str, Any]:
    """A payload as plain JSON-ready values (for tests, logs and the API)."""
    body: dict[str, Any] = msgspec.to_builtins(payload)
    return body
