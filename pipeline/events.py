"""Payloads of the pipeline's topics (schemas in docs/contracts.md), built from billing values.

Every payload is JSON-safe: money in integer fen, quantities and exact costs as decimal
strings, instants as ISO 8601 with an offset, and a deterministic id.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from connectors.dispatch.commands import Command
from pipeline.billing import Rating
from pipeline.billing.ids import derive_id, instant_key
from pipeline.billing.money import decimal_text, fraction_text, round_half_up
from pipeline.billing.validation import Interval, Rejected
from pipeline.billing.wallet_model import (
    LedgerEntry,
    LowBalanceAlarm,
    Refusal,
    SupplyDecision,
    WalletState,
)
from pipeline.raw_reading import RawReading

COMMAND_TTL = timedelta(hours=1)
UNITS_PLACES = 6


def accepted(reading: RawReading, interval: Interval | None) -> dict[str, Any]:
    """``meterflow.readings.accepted``: an accepted reading and the interval it closes."""
    body: dict[str, Any] = {
        "meter_id": reading.meter_id,
        "ts": reading.ts.isoformat(),
        "value": decimal_text(reading.value),
        "unit": reading.unit,
        "registers": {b: decimal_text(v) for b in ("sharp", "peak", "flat", "valley")
                      if (v := getattr(reading, b)) is not None},
        "source": reading.source,
        "interval": None,
    }
    if interval is not None:
        body["interval"] = {
            "start": interval.start.isoformat(),
            "end": interval.end.isoformat(),
            "units": decimal_text(interval.units),
            "band_units": None if interval.band_units is None
            else {b: decimal_text(u) for b, u in interval.band_units.items()},
            "rollover": interval.rollover,
        }
    return body


def rejected(outcome: Rejected, raw: bytes) -> dict[str, Any]:
    """``meterflow.readings.rejected``: the reading, the stable reason code, the raw bytes."""
    return {
        "rejection_id": outcome.id,
        "meter_id": outcome.reading.meter_id,
        "ts": outcome.reading.ts.isoformat(),
        "value": decimal_text(outcome.reading.value),
        "reason": outcome.reason,
        "detail": outcome.detail,
        "raw_b64": base64.b64encode(raw).decode(),
    }


def meter_event(meter_id: str, kind: str, at: datetime, detail: str = "") -> dict[str, Any]:
    """``meterflow.meter.events``: online, offline, meter_stopped, unrated."""
    return {
        "event_id": derive_id(kind, meter_id, instant_key(at)),
        "meter_id": meter_id, "kind": kind, "at": at.isoformat(), "detail": detail,
    }


def rated(interval_id: str, meter_id: str, account_id: str | None, rating: Rating
          ) -> dict[str, Any]:
    """``meterflow.intervals.rated`` (key account): units and money per band and step."""
    return {
        "interval_id": interval_id,
        "meter_id": meter_id,
        "account_id": account_id,
        "tariff_id": rating.tariff_id,
        "start": rating.start.isoformat(),
        "end": rating.end.isoformat(),
        "units": fraction_text(rating.units) if rating.units.denominator == 1
        else decimal_text(round_half_up(rating.units, UNITS_PLACES)),
        "cost": decimal_text(rating.cost),
        "lines": [
            {"band": line.band, "step": line.step, "price": decimal_text(line.price),
             "units": decimal_text(round_half_up(line.units, UNITS_PLACES)),
             "amount": decimal_text(round_half_up(line.amount, 10))}
            for line in rating.lines
        ],
        "surcharges": [
            {"name": s.name, "price": decimal_text(s.price),
             "units": decimal_text(round_half_up(s.units, UNITS_PLACES)),
             "amount": decimal_text(round_half_up(s.amount, 10))}
            for s in rating.surcharges
        ],
    }


def ledger(entry: LedgerEntry, meter_id: str | None) -> dict[str, Any]:
    """``meterflow.ledger``: one append-only entry, signed fen (credits positive)."""
    return {
        "entry_id": entry.entry_id, "account_id": entry.account_id, "seq": entry.seq,
        "at": entry.at.isoformat(), "kind": entry.kind, "key": entry.key,
        "amount_fen": entry.amount_fen, "balance_fen": entry.balance_fen,
        "meter_id": meter_id, "detail": entry.detail,
    }


def balance(state: WalletState, at: datetime) -> dict[str, Any]:
    """``meterflow.balances`` (compacted): the latest state of an account."""
    return {
        "account_id": state.account_id, "balance_fen": state.balance_fen,
        "alarm_level": state.alarm_level, "supply": state.supply, "seq": state.seq,
        "disconnect_pending": state.disconnect_pending,
        "deferred_until": None if state.deferred_until is None
        else state.deferred_until.isoformat(),
        "updated_at": at.isoformat(),
    }


def low_balance(alarm: LowBalanceAlarm) -> dict[str, Any]:
    return {
        "alarm_id": alarm.alarm_id, "account_id": alarm.account_id, "kind": "low_balance",
        "level": alarm.level, "threshold_fen": alarm.threshold_fen,
        "balance_fen": alarm.balance_fen, "at": alarm.at.isoformat(), "detail": "",
    }


def supply(decision: SupplyDecision) -> dict[str, Any]:
    """Supply decisions are alarms too: disconnect, reconnect, deferred, cancelled."""
    return {
        "alarm_id": decision.decision_id, "account_id": decision.account_id,
        "kind": decision.action, "level": None, "threshold_fen": None,
        "balance_fen": decision.balance_fen, "at": decision.at.isoformat(),
        "detail": decision.reason if decision.until is None
        else f"{decision.reason} until {decision.until.isoformat()}",
    }


def refusal(refused: Refusal, at: datetime) -> dict[str, Any]:
    return {
        "alarm_id": derive_id("refused", refused.account_id, refused.key),
        "account_id": refused.account_id, "kind": "refused", "level": None,
        "threshold_fen": None, "balance_fen": None, "at": at.isoformat(),
        "detail": f"{refused.reason}: {refused.detail} (key {refused.key})",
    }


def command(decision: SupplyDecision, meter_id: str) -> dict[str, Any]:
    """``meterflow.commands``: one disconnect/reconnect per meter of the account."""
    made = Command.create(meter_id, "disconnect" if decision.action == "disconnect"
                          else "reconnect", origin=decision.decision_id,
                          issued_at=decision.at, ttl=COMMAND_TTL, reason=decision.reason)
    return {
        "command_id": made.command_id, "meter_id": made.meter_id, "action": made.action,
        "issued_at": made.issued_at.isoformat(), "deadline": made.deadline.isoformat(),
        "reason": made.reason,
    }
