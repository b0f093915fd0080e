"""The per-meter stage: validate a reading and rate the interval it closes, in one step.

Pure functions of ``(record, input, configuration, now) -> (record, outputs)`` that the
stream edge (pipeline/processor.py) calls once per message of the meter-keyed topics:

* a raw reading is accepted (``meterflow.readings.accepted``) or rejected with a reason
  (``meterflow.readings.rejected``); an accepted reading that closes an interval is rated
  with the meter's tariff and re-keyed to its account (``meterflow.intervals.rated``);
* a clock tick looks at the meter's silence: past its expected interval the meter is
  announced offline once, and its next reading announces it online;
* a command acknowledgement is forwarded to the meter's account (the wallet follows its
  commands, pipeline/wallet_stage.py).

Outputs carry deterministic ids; the rules themselves live in the billing core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from contracts import messages, topics
from contracts.commands import Ack
from contracts.ids import charge_id
from contracts.messages import Payload
from contracts.raw_reading import BANDS, RawReading
from pipeline import payloads
from pipeline.billing import TariffBook, TierState, rate, recent
from pipeline.billing.bill import scaled_usage
from pipeline.billing.errors import RatingError
from pipeline.billing.reading import Reading
from pipeline.billing.validation import Accepted, Interval, MeterState, Rejected, validate
from pipeline.configuration import MeterSetup
from pipeline.records import MeterRecord

UNKNOWN_METER = "unknown_meter"


@dataclass(frozen=True, slots=True)
class Out:
    """One output message: topic name, key and the encoded payload."""

    topic: str
    key: str
    value: bytes


def out(topic: str, key: str, payload: Payload) -> Out:
    return Out(topic, key, messages.encode(payload))


def on_reading(record: MeterRecord | None, reading: RawReading, raw: bytes,
               setup: MeterSetup | None, book: TariffBook | None, now: datetime
               ) -> tuple[MeterRecord | None, list[Out]]:
    """Accept or reject one reading; rate the interval an accepted reading closes."""
    meter = reading.meter_id
    core = Reading(meter, reading.ts, reading.value,
                   {b: v for b in BANDS if (v := getattr(reading, b)) is not None})
    if setup is None or setup.removed:
        unknown = Rejected(core, UNKNOWN_METER, "no configuration: open it on an account")
        return record, [out(topics.REJECTED_READINGS, meter, payloads.rejected(unknown, raw))]
    if record is None:
        record = MeterRecord(MeterState(meter))
    if recent.verdict(record.recent, core) is not None:
        return record, []  # the same reading again: it was answered the first time
    state, outcome = validate(record.validation, core, setup.meter_config(), now)
    if isinstance(outcome, Rejected):
        seen = recent.remember(record.recent, core, outcome.reason)
        return msgspec.structs.replace(record, recent=seen), [
            out(topics.REJECTED_READINGS, meter, payloads.rejected(outcome, raw))]
    if not isinstance(outcome, Accepted):  # an idempotent duplicate: nothing to do
        return record, []
    outs = [out(topics.ACCEPTED_READINGS, meter, payloads.accepted(reading, outcome.interval))]
    if record.offline:
        outs.append(out(topics.METER_EVENTS, meter,
                        payloads.meter_event(meter, "online", reading.ts, "reading received")))
    tiers = record.tiers
    interval = outcome.interval
    if interval is not None:
        tiers, rated = _rate(meter, interval, setup, book, tiers)
        outs.append(rated)
    return MeterRecord(state, tiers, False, recent.remember(record.recent, core,
                                                           recent.ACCEPTED)), outs


def _rate(meter: str, interval: Interval, setup: MeterSetup, book: TariffBook | None,
          tiers: TierState | None) -> tuple[TierState | None, Out]:
    """The rated interval re-keyed to the account, or an ``unrated`` meter event."""
    start, end = interval.start, interval.end
    if book is None or setup.account_id is None:
        why = "no tariff" if book is None else "no account"
        return tiers, out(topics.METER_EVENTS, meter,
                          payloads.meter_event(meter, "unrated", end, why))
    usage = scaled_usage(start, end, interval.units, interval.band_units, setup.multiplier)
    try:
        after, rating = rate(book, tiers, usage)
    except RatingError as exc:
        return tiers, out(topics.METER_EVENTS, meter,
                          payloads.meter_event(meter, "unrated", end, str(exc)))
    body = payloads.rated(charge_id(meter, end), meter, setup.account_id, rating)
    return after, out(topics.RATED_INTERVALS, setup.account_id, body)


def on_tick(record: MeterRecord | None, now: datetime, setup: MeterSetup | None
            ) -> tuple[MeterRecord | None, list[Out]]:
    """A meter silent for longer than its expected interval is announced offline, once.

    The event is dated when the meter became overdue (its last reading plus the expected
    interval), so announcing it again after a restart gives the same event.
    """
    if record is None or record.offline or setup is None or setup.removed:
        return record, []
    last = record.validation.last
    if last is None:
        return record, []
    overdue = last.ts + timedelta(seconds=setup.expected_interval_s)
    if now <= overdue:
        return record, []
    meter = setup.meter_id
    event = payloads.meter_event(meter, "offline", overdue,
                                 f"no reading since {last.ts.isoformat()}")
    return msgspec.structs.replace(record, offline=True), [
        out(topics.METER_EVENTS, meter, event)]


def on_ack(ack: Ack, setup: MeterSetup | None) -> list[Out]:
    """A command's final acknowledgement, forwarded to the meter's account (the wallet
    issues a command again when it expired or failed while the decision stands)."""
    if setup is None or setup.account_id is None:
        return []  # no account follows this meter's commands (an operator's own command)
    signal = messages.WalletSignal(kind="command_outcome", at=ack.at.isoformat(),
                                   command_id=ack.command_id, meter_id=ack.meter_id,
                                   status=ack.status, detail=ack.detail)
    return [out(topics.WALLET_SIGNALS, setup.account_id, signal)]
