"""The per-account stage: the wallet and the commands that carry out its supply decisions.

Pure functions of ``(record, input, account setup, now, policy) -> (record, outputs)``,
called by the stream edge (pipeline/processor.py) once per message of the account-keyed
topics:

* a rated interval is charged (the sub-fen remainder carried by the wallet);
* a payment (top-up, refund, adjustment) is applied once per idempotency key;
* a clock tick carries out a deferred disconnect whose window ended and issues again the
  commands whose retry time came;
* a command outcome (forwarded by the meter stage) confirms a meter's command or, when it
  expired or failed while the decision stands, schedules it again.

``now`` is when the wallet applies the input: supply decisions, alarms and commands are
made then (a command's deadline runs from its making, however late the data behind it),
while a ledger entry is dated by its input (a charge at its interval's end, a payment at
its recording). Outputs carry deterministic ids; the rules live in pipeline/billing/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from contracts import messages, topics
from contracts.errors import PayloadError
from contracts.messages import PaymentMessage, RatedInterval, WalletSignal
from contracts.money import parse_decimal
from pipeline import payloads
from pipeline.billing import WalletState, apply, open_account, tick
from pipeline.billing.supply import (
    CommandNotice,
    CommandOutcome,
    CommandPolicy,
    MeterCommand,
    Supply,
    due_again,
    forget_meters,
    issue,
    record_outcome,
    supply_state,
    wake_at,
)
from pipeline.billing.wallet_model import (
    CONNECTED,
    Adjustment,
    Charge,
    Deduction,
    LedgerEntry,
    LowBalanceAlarm,
    Output,
    Refund,
    Refusal,
    SupplyDecision,
    TopUp,
)
from pipeline.configuration import AccountSetup
from pipeline.meter_stage import Out, out
from pipeline.records import WalletRecord, WalletSnapshot

PAYMENT_KINDS = ("topup", "refund", "adjustment", "charge_item", "apportionment")


@dataclass(frozen=True, slots=True)
class Account:
    """The account being worked on: its wallet under the configuration in force (read
    from the database) and its supply commands."""

    wallet: WalletState
    supply: Supply


def _start(record: WalletRecord | None, setup: AccountSetup) -> Account:
    if record is None:
        return Account(open_account(setup.account_id, setup.wallet), Supply())
    return Account(record.wallet.state(setup.account_id, setup.wallet),
                   forget_meters(record.supply, setup.meters))


def _instant(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"field {field}: {text!r} is not an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise PayloadError(f"field {field}: {text!r} has no UTC offset")
    return value


def on_charge(record: WalletRecord | None, rated: RatedInterval, setup: AccountSetup,
              now: datetime, policy: CommandPolicy) -> tuple[WalletRecord, list[Out]]:
    """Deduct a rated interval's cost."""
    end = _instant(rated.end, "end")
    try:
        cost = parse_decimal(rated.cost)
    except ValueError as exc:
        raise PayloadError(f"field cost: {exc}") from None
    charge = Charge(rated.interval_id, rated.meter_id, cost, end)
    return _apply(_start(record, setup), charge, setup, now, end, rated.meter_id, policy)


def on_payment(record: WalletRecord | None, payment: PaymentMessage, setup: AccountSetup,
               now: datetime, policy: CommandPolicy) -> tuple[WalletRecord, list[Out]]:
    """Apply a top-up, refund, adjustment or deduction, once per idempotency key."""
    at = _instant(payment.at, "at")
    key, amount = payment.idempotency_key, payment.amount_fen
    command: TopUp | Refund | Adjustment | Deduction
    if payment.kind in ("charge_item", "apportionment"):
        command = Deduction(key, payment.kind, amount, payment.may_cut, payment.note)
    elif payment.kind == "topup":
        command = TopUp(key, amount)
    elif payment.kind == "refund":
        command = Refund(key, amount)
    elif payment.kind == "adjustment":
        command = Adjustment(key, amount, payment.note or "adjustment")
    else:
        raise PayloadError(f"field kind: {payment.kind!r} is not one of {', '.join(PAYMENT_KINDS)}")
    return _apply(_start(record, setup), command, setup, now, at, None, policy)


def on_signal(record: WalletRecord | None, signal: WalletSignal, setup: AccountSetup,
              now: datetime, policy: CommandPolicy) -> tuple[WalletRecord, list[Out]]:
    """A clock tick or a command outcome."""
    current = _start(record, setup)
    wallet, supply = current.wallet, current.supply
    notices: list[CommandNotice] = []
    results: list[Output] = []
    if signal.kind == "tick":
        wallet, results = tick(wallet, now)
    elif signal.kind == "command_outcome":
        if not (signal.command_id and signal.meter_id and signal.status):
            raise PayloadError("a command outcome needs command_id, meter_id and status")
        outcome = CommandOutcome(signal.command_id, signal.meter_id, signal.status,
                                 _instant(signal.at, "at"), signal.detail)
        supply, notices = record_outcome(supply, outcome, wallet.supply == CONNECTED, now,
                                         policy)
    else:
        raise PayloadError(f"field kind: {signal.kind!r} is not tick or command_outcome")
    return _finish(current, wallet, supply, results, notices, setup, now, None, policy)


def _apply(current: Account, command: Charge | TopUp | Refund | Adjustment | Deduction,
           setup: AccountSetup, now: datetime, at: datetime, meter_id: str | None,
           policy: CommandPolicy) -> tuple[WalletRecord, list[Out]]:
    wallet, results = apply(current.wallet, command, now, at)
    return _finish(current, wallet, current.supply, results, [], setup, now, meter_id, policy)


def _finish(before: Account, wallet: WalletState, supply: Supply,
            results: Sequence[Output], notices: Sequence[CommandNotice],
            setup: AccountSetup, now: datetime, meter_id: str | None,
            policy: CommandPolicy) -> tuple[WalletRecord, list[Out]]:
    """Outputs of one step: ledger, alarms, commands (new decisions and retries due now),
    and the balance whenever anything an operator sees changed."""
    key = setup.account_id
    outs: list[Out] = []
    made: list[tuple[MeterCommand, str]] = []
    for result in results:
        if isinstance(result, LedgerEntry):
            outs.append(out(topics.LEDGER, key, payloads.ledger(result, meter_id)))
        elif isinstance(result, LowBalanceAlarm):
            outs.append(out(topics.ALARMS, key, payloads.low_balance(result)))
        elif isinstance(result, SupplyDecision):
            outs.append(out(topics.ALARMS, key, payloads.supply(result)))
            if result.action in ("disconnect", "reconnect"):
                supply, sent = issue(supply, result.action, result.decision_id, setup.meters,
                                     now, policy)
                made += [(c, result.reason) for c in sent]
        elif isinstance(result, Refusal):
            outs.append(out(topics.ALARMS, key, payloads.refusal(result, now)))
    for notice in notices:
        outs.append(out(topics.ALARMS, key,
                        payloads.command_notice(key, notice, wallet.balance_fen)))
    supply, again = due_again(supply, wallet.supply == CONNECTED, now, policy)
    made += [(c, f"issued again (attempt {c.attempt})") for c in again]
    outs += [Out(topics.COMMANDS, c.meter_id, payloads.command(c, reason).to_json())
             for c, reason in made]
    after = Account(wallet, supply)
    if _shown(before, after):
        outs.append(out(topics.BALANCES, key, balance(after, now)))
    return WalletRecord(WalletSnapshot.of(wallet), supply), outs


def _shown(before: Account, after: Account) -> bool:
    """Whether the balance message would say anything new."""
    old, new = before.wallet, after.wallet
    return (old.seq, old.supply, old.disconnect_pending, old.deferred_until,
            supply_state(before.supply, old.supply == CONNECTED), wake_at(before.supply)) != (
        new.seq, new.supply, new.disconnect_pending, new.deferred_until,
        supply_state(after.supply, new.supply == CONNECTED), wake_at(after.supply))


def next_wake(record: Account) -> datetime | None:
    """When the clock should tick this account: a deferred cut's end or a retry."""
    wallet = record.wallet
    times = [t for t in (wake_at(record.supply),) if t is not None]
    if wallet.disconnect_pending and not wallet.manual_keep_supply \
            and not wallet.config.keep_supply.manual and wallet.deferred_until is not None:
        times.append(wallet.deferred_until)
    return min(times, default=None)


def balance(record: Account, at: datetime) -> messages.BalanceMessage:
    """``meterflow.balances``: the latest state of an account."""
    wallet = record.wallet
    wake = next_wake(record)
    return messages.BalanceMessage(
        account_id=wallet.account_id, balance_fen=wallet.balance_fen,
        alarm_level=wallet.alarm_level, supply=wallet.supply,
        supply_state=supply_state(record.supply, wallet.supply == CONNECTED), seq=wallet.seq,
        disconnect_pending=wallet.disconnect_pending,
        deferred_until=None if wallet.deferred_until is None
        else wallet.deferred_until.isoformat(),
        wake_at=None if wake is None else wake.isoformat(), updated_at=at.isoformat())
