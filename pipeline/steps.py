"""One step of each agent: (state record, input, configuration) -> (record, outputs).

Pure functions around the billing core, so the Faust agents stay thin and every rule is
tested without Kafka. A record is the JSON-safe value kept in the agent's table; outputs
are ``(topic, key, value)`` triples. Each step remembers its outputs per input id
(:mod:`pipeline.replay`) and re-emits them when the input comes again.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pipeline import events, topics
from pipeline.billing import (
    MeterState,
    TariffBook,
    TierState,
    WalletState,
    apply,
    charge_for,
    open_account,
    rate,
    tick,
    validate,
)
from pipeline.billing.bill import scaled_usage
from pipeline.billing.ids import instant_key
from pipeline.billing.money import parse_decimal
from pipeline.billing.reading import Reading
from pipeline.billing.validation import Duplicate, Rejected
from pipeline.billing.wallet_model import (
    Adjustment,
    Charge,
    LedgerEntry,
    LowBalanceAlarm,
    Refund,
    Refusal,
    SupplyDecision,
    TopUp,
)
from pipeline.raw_reading import BANDS, RawReading
from pipeline.replay import Out, recall, remember
from pipeline.setup import AccountSetup, MeterSetup

Record = dict[str, Any]
UNKNOWN_METER = "unknown_meter"


# --- validate (per meter) ---------------------------------------------------------------


def validate_step(record: Record | None, reading: RawReading, raw: bytes,
                  setup: MeterSetup | None, now: datetime, *, offline: bool = False,
                  replay: bool = False) -> tuple[Record, list[Out]]:
    """Accept or reject a reading; an ``offline`` meter is announced online again.

    The input is identified by its instant and its bytes: the same message read again
    gets the same answer (accepted or rejected), even after later readings moved on.
    A ``replay`` (an input already applied, read again after a restart) re-emits what is
    remembered for it and otherwise changes nothing (pipeline.replay.behind).
    """
    input_id = f"{instant_key(reading.ts)}:{hashlib.sha256(raw).hexdigest()[:16]}"
    again = recall(record, input_id)
    if again is not None and record is not None:
        return record, again
    if replay:
        return record or {}, []
    record = dict(record or {"meter": MeterState(reading.meter_id).to_dict()})
    key = reading.meter_id
    core = Reading(reading.meter_id, reading.ts, reading.value,
                   {b: v for b in BANDS if (v := getattr(reading, b)) is not None})
    if setup is None or setup.removed:
        unknown = Rejected(core, UNKNOWN_METER, "no configuration: open it on an account")
        return record, [(topics.REJECTED_READINGS, key, events.rejected(unknown, raw))]
    state, outcome = validate(MeterState.from_dict(record["meter"]), core,
                              setup.meter_config(), now)
    if isinstance(outcome, Duplicate):
        return record, []
    if isinstance(outcome, Rejected):
        rejection: list[Out] = [(topics.REJECTED_READINGS, key, events.rejected(outcome, raw))]
        return remember(record, input_id, rejection), rejection
    outs: list[Out] = [(topics.ACCEPTED_READINGS, key, events.accepted(reading, outcome.interval))]
    if offline:
        outs.append((topics.METER_EVENTS, key,
                     events.meter_event(key, "online", reading.ts, "reading received")))
    record = {**record, "meter": state.to_dict(), "last_seen": reading.ts.isoformat()}
    return remember(record, input_id, outs), outs


def silence_step(record: Record, setup: MeterSetup | None, now: datetime) -> list[Out]:
    """On a timer: a meter silent for longer than its expected interval goes offline.

    The event is dated when the meter became overdue (its last reading plus the expected
    interval), so announcing it again (after a restart) gives the same event.
    """
    if setup is None or setup.removed or not record.get("last_seen"):
        return []
    last_seen = datetime.fromisoformat(record["last_seen"])
    overdue = last_seen + timedelta(seconds=setup.expected_interval_s)
    if now <= overdue:
        return []
    meter = setup.meter_id
    detail = f"no reading since {last_seen.isoformat()}"
    return [(topics.METER_EVENTS, meter, events.meter_event(meter, "offline", overdue, detail))]


# --- rate (per meter) ---------------------------------------------------------------------


def rate_step(record: Record | None, accepted: dict[str, Any], setup: MeterSetup | None,
              book: TariffBook | None, *, replay: bool = False) -> tuple[Record, list[Out]]:
    """Rate the interval an accepted reading closes; re-key the result to its account."""
    interval = accepted.get("interval")
    meter = str(accepted["meter_id"])
    if interval is None:
        return record or {}, []
    end = datetime.fromisoformat(interval["end"])
    input_id = instant_key(end)
    again = recall(record, input_id)
    if again is not None and record is not None:
        return record, again
    if replay:  # rating it again would count its units into the tiers twice
        return record or {}, []
    record = dict(record or {})
    if setup is None or book is None or setup.account_id is None:
        why = "no tariff" if book is None else "no account"
        outs: list[Out] = [(topics.METER_EVENTS, meter,
                            events.meter_event(meter, "unrated", end, why))]
        return remember(record, input_id, outs), outs
    band_units = interval.get("band_units")
    usage = scaled_usage(
        datetime.fromisoformat(interval["start"]), end, parse_decimal(interval["units"]),
        None if band_units is None else {b: parse_decimal(u) for b, u in band_units.items()},
        setup.multiplier,
    )
    tiers_data = record.get("tiers")
    tiers = TierState.from_dict(tiers_data) if tiers_data else None
    tiers, rating = rate(book, tiers, usage)
    charge = charge_for(meter, rating)
    outs = [(topics.RATED_INTERVALS, setup.account_id,
             events.rated(charge.charge_id, meter, setup.account_id, rating))]
    record["tiers"] = tiers.to_dict()
    return remember(record, input_id, outs), outs


# --- wallet (per account) -----------------------------------------------------------------


def _state(record: Record | None, setup: AccountSetup) -> WalletState:
    if record and record.get("wallet"):
        state = WalletState.from_dict(record["wallet"])
        if state.config != setup.wallet:
            state = replace(state, config=setup.wallet)
        return state
    return open_account(setup.account_id, setup.wallet)


def _outputs(state: WalletState, results: list[Any], setup: AccountSetup,
             meter_id: str | None, at: datetime) -> list[Out]:
    key = setup.account_id
    outs: list[Out] = []
    for result in results:
        if isinstance(result, LedgerEntry):
            outs.append((topics.LEDGER, key, events.ledger(result, meter_id)))
        elif isinstance(result, LowBalanceAlarm):
            outs.append((topics.ALARMS, key, events.low_balance(result)))
        elif isinstance(result, SupplyDecision):
            outs.append((topics.ALARMS, key, events.supply(result)))
            if result.action in ("disconnect", "reconnect"):
                outs.extend((topics.COMMANDS, meter, events.command(result, meter))
                            for meter in setup.meters)
        elif isinstance(result, Refusal):
            outs.append((topics.ALARMS, key, events.refusal(result, at)))
    if any(topic == topics.LEDGER for topic, _, _ in outs) or any(
        isinstance(r, SupplyDecision) for r in results
    ):
        outs.append((topics.BALANCES, key, events.balance(state, at)))
    return outs


def charge_step(record: Record | None, rated: dict[str, Any], setup: AccountSetup,
                *, replay: bool = False) -> tuple[Record, list[Out]]:
    """Deduct a rated interval's cost (the sub-fen remainder carried by the wallet)."""
    at = datetime.fromisoformat(rated["end"])
    charge = Charge(str(rated["interval_id"]), str(rated["meter_id"]),
                    parse_decimal(rated["cost"]), at)
    return _wallet(record, charge.charge_id, charge, setup, charge.meter_id, at, replay)


def payment_step(record: Record | None, payment: dict[str, Any], setup: AccountSetup,
                 *, replay: bool = False) -> tuple[Record, list[Out]]:
    """Apply a top-up, refund or adjustment from the payments topic, once per key."""
    key = str(payment["idempotency_key"])
    amount = int(payment["amount_fen"])
    kind = payment["kind"]
    command: TopUp | Refund | Adjustment
    if kind == "topup":
        command = TopUp(key, amount)
    elif kind == "refund":
        command = Refund(key, amount)
    else:
        command = Adjustment(key, amount, str(payment.get("note") or "adjustment"))
    at = datetime.fromisoformat(payment["at"])
    return _wallet(record, f"payment:{key}", command, setup, None, at, replay)


def _wallet(record: Record | None, input_id: str, command: Any, setup: AccountSetup,
            meter_id: str | None, at: datetime, replay: bool) -> tuple[Record, list[Out]]:
    again = recall(record, input_id)
    if again is not None and record is not None:
        return record, again
    if replay:
        return record or {}, []
    state, results = apply(_state(record, setup), command, at)
    outs = _outputs(state, results, setup, meter_id, at)
    new = {**(record or {}), "wallet": state.to_dict()}
    return remember(new, input_id, outs), outs


def tick_step(record: Record | None, at: datetime, setup: AccountSetup,
              *, replay: bool = False) -> tuple[Record, list[Out]]:
    """A tick from the timer: carry out a disconnect deferred to the end of its window."""
    input_id = f"tick:{instant_key(at)}"
    again = recall(record, input_id)
    if again is not None and record is not None:
        return record, again
    if replay:
        return record or {}, []
    state, results = tick(_state(record, setup), at)
    outs = _outputs(state, results, setup, None, at)
    new = {**(record or {}), "wallet": state.to_dict()}
    return remember(new, input_id, outs), outs


def disconnect_due(record: Record | None, now: datetime,
                   setup: AccountSetup | None = None) -> bool:
    """Whether the timer should send this account a tick (a deferred disconnect is due).

    The manual keep-supply flag is read from ``setup`` (the configuration in force) when
    given: an operator who switches it off expects the deferred cut now, not at the
    account's next charge, and the record's copy of the configuration is as old as its
    last event.
    """
    wallet = (record or {}).get("wallet") or {}
    if setup is not None:
        manual = setup.wallet.keep_supply.manual
    else:
        manual = bool(((wallet.get("config") or {}).get("keep_supply") or {}).get("manual"))
    if not wallet.get("disconnect_pending") or wallet.get("manual_keep_supply") or manual:
        return False
    until = wallet.get("deferred_until")
    return until is None or datetime.fromisoformat(until) <= now

