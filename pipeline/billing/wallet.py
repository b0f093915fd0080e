"""Wallet transitions: ``apply(state, command, now)`` and ``tick(state, now)``.

Each returns ``(new_state, outputs)``: ledger entries, low-balance alarms and supply
decisions as values; nothing is performed here. Rules (docs/tariffs.md, wallets):
  * idempotency keys apply once; a repeat returns the original result; the same key with
    another amount or kind is refused (``idempotency_conflict``);
  * a refund may not exceed the balance (``insufficient_balance``);
  * a low-balance level fires when the balance crosses its threshold downward (at or
    below it) and re-arms when the balance is lifted above it again;
  * a deduction (custom charge, apportionment share) posts like a payment, once per key;
    one whose item may not cut supply is shielded: supply decisions look at the balance
    plus the shielded amount, which is cleared once the balance is above zero (all owed
    paid); so such a deduction never decides a cut by itself, energy still does;
  * supply is due to be cut at ``balance <= -overdraft`` (never when postpaid); inside a
    keep-supply window the cut is deferred to the window's end, which ``tick`` enforces;
  * supply is reconnected when the balance is lifted above ``reconnect_above_fen``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from contracts.ids import alarm_id, ledger_entry_id, supply_decision_id
from contracts.money import COST_PLACES, decimal_text, round_fen, round_half_up
from pipeline.billing.instants import utc
from pipeline.billing.wallet_model import (
    CONNECTED,
    DISCONNECTED,
    Adjustment,
    Charge,
    Command,
    Deduction,
    LastCharge,
    LedgerEntry,
    LowBalanceAlarm,
    Output,
    Processed,
    Refund,
    Refusal,
    Replayed,
    SetKeepSupply,
    SupplyDecision,
    TopUp,
    WalletConfig,
    WalletState,
)

IDEMPOTENCY_CONFLICT = "idempotency_conflict"
INSUFFICIENT_BALANCE = "insufficient_balance"
INVALID_AMOUNT = "invalid_amount"
DEDUCTION_KINDS = ("charge_item", "apportionment")


def open_account(account_id: str, config: WalletConfig | None = None) -> WalletState:
    """A new wallet at zero balance with no alarm announced yet.

    Its level is already what the balance says (``alarm_level``), but the alarms are raised
    by the first posting: a first top-up that leaves the balance under a threshold warns
    the tenant, where counting the levels as announced at opening would stay silent until
    the balance had once risen above them.
    """
    return WalletState(account_id, config or WalletConfig())


def _refuse(
    state: WalletState, key: str, reason: str, detail: str
) -> tuple[WalletState, list[Output]]:
    return state, [Refusal(state.account_id, key, reason, detail)]


def _money(command: Command) -> tuple[str, str, int, str]:
    """(kind, key, signed fen, detail) of a money command other than a charge."""
    if isinstance(command, Deduction):
        return command.kind, command.key, -command.amount_fen, command.detail
    if isinstance(command, TopUp):
        return "topup", command.key, command.amount_fen, ""
    if isinstance(command, Refund):
        return "refund", command.key, -command.amount_fen, ""
    assert isinstance(command, Adjustment)
    return "adjustment", command.key, command.amount_fen, command.reason


def apply(state: WalletState, command: Command, now: datetime,
          at: datetime | None = None) -> tuple[WalletState, list[Output]]:
    """Apply one command at ``now``; its ledger entry is dated ``at`` (default ``now``).

    The stream dates a charge's entry at the end of its interval and a payment's at its
    recording, while alarms and supply decisions happen when the wallet applies them:
    late data (a concentrator uploading buffered intervals) still cuts off or warns now.
    """
    if isinstance(command, SetKeepSupply):
        state = replace(state, manual_keep_supply=command.on)
        return _supply(state, now)
    if isinstance(command, Charge):
        kind, key, amount = "charge", command.charge_id, decimal_text(command.cost)
        if command.cost < 0 or command.cost != round_half_up(command.cost, COST_PLACES):
            return _refuse(state, key, INVALID_AMOUNT, f"cost {command.cost} is not allowed")
    else:
        kind, key, fen, detail = _money(command)
        amount = str(abs(fen))
        if isinstance(command, Adjustment):
            amount = str(fen)
            if fen == 0 or not command.reason:
                return _refuse(state, key, INVALID_AMOUNT, "needs a non-zero amount and a reason")
        elif isinstance(command, Deduction):
            if command.amount_fen <= 0 or command.kind not in DEDUCTION_KINDS:
                return _refuse(state, key, INVALID_AMOUNT,
                               "a deduction needs a positive amount and a known kind")
        elif (
            fen == 0
            or (isinstance(command, TopUp) and fen < 0)
            or (isinstance(command, Refund) and fen > 0)
        ):
            return _refuse(state, key, INVALID_AMOUNT, "amount_fen must be positive")
    if isinstance(command, Charge):
        last = state.last_charges.get(command.meter_id)
        if last is not None and utc(command.end) < utc(last.end):
            return state, [Replayed(key, None)]  # older than the meter's newest charge
        seen = last.result if last is not None and utc(command.end) == utc(last.end) else None
        if seen is not None and last is not None and last.key != key:
            seen = Processed("charge", f"key {last.key}", seen.seq, seen.balance_fen)
    else:
        seen = state.processed.get(key)
    if seen is not None:
        if (seen.kind, seen.amount) != (kind, amount):
            return _refuse(
                state, key, IDEMPOTENCY_CONFLICT, f"key already used for {seen.kind} {seen.amount}"
            )
        return state, [Replayed(key, seen)]
    if isinstance(command, Charge):
        cumulative = state.cumulative_cost + command.cost
        fen = round_fen(cumulative) - state.charged_fen
        state = replace(state, cumulative_cost=cumulative, charged_fen=state.charged_fen + fen)
        fen, detail = -fen, command.meter_id
    elif isinstance(command, Refund) and -fen > state.balance_fen:
        return _refuse(
            state,
            key,
            INSUFFICIENT_BALANCE,
            f"refund {-fen} fen exceeds the balance {state.balance_fen} fen",
        )
    charge_end = command.end if isinstance(command, Charge) else None
    shielded = isinstance(command, Deduction) and not command.may_cut
    if shielded:
        state = replace(state, shielded_fen=state.shielded_fen - fen)
    return _post(state, kind, key, amount, fen, detail, now, at or now, charge_end,
                 decide=not shielded)


def _post(
    state: WalletState,
    kind: str,
    key: str,
    amount: str,
    fen: int,
    detail: str,
    now: datetime,
    at: datetime,
    charge_end: datetime | None = None,
    decide: bool = True,
) -> tuple[WalletState, list[Output]]:
    """Append the entry; then alarms and (unless ``decide`` is False: a shielded deduction
    never makes what supply looks at worse, so it decides nothing) supply decisions."""
    seq = state.seq + 1
    balance = state.balance_fen + fen
    entry = LedgerEntry(
        ledger_entry_id(state.account_id, seq),
        state.account_id,
        seq,
        kind,
        key,
        fen,
        balance,
        at,
        detail,
    )
    result = Processed(kind, amount, seq, balance)
    if charge_end is not None:
        meter = detail  # a charge's detail is its meter id
        last = {**state.last_charges, meter: LastCharge(charge_end, key, result)}
        state = replace(state, seq=seq, balance_fen=balance, last_charges=last)
    else:
        state = replace(state, seq=seq, balance_fen=balance,
                        processed={**state.processed, key: result})
    if state.balance_fen > 0 and state.shielded_fen:
        state = replace(state, shielded_fen=0)
    state, alarms = _alarms(state, now)
    if not decide:
        return state, [entry, *alarms]
    state, decisions = _supply(state, now)
    return state, [entry, *alarms, *decisions]


def _alarms(state: WalletState, now: datetime) -> tuple[WalletState, list[Output]]:
    fired = set(state.fired_levels)
    out: list[Output] = []
    for level, threshold in enumerate(state.config.thresholds_fen, 1):
        if state.balance_fen <= threshold and level not in fired:
            fired.add(level)
            out.append(
                LowBalanceAlarm(
                    alarm_id(state.account_id, threshold, state.seq),
                    state.account_id,
                    level,
                    threshold,
                    state.balance_fen,
                    state.seq,
                    now,
                )
            )
        elif state.balance_fen > threshold:
            fired.discard(level)
    return replace(state, fired_levels=frozenset(fired)), out


def _decision(
    state: WalletState, action: str, reason: str, now: datetime, until: datetime | None = None
) -> SupplyDecision:
    return SupplyDecision(
        supply_decision_id(state.account_id, action, state.seq, now),
        state.account_id,
        action,
        reason,
        state.balance_fen,
        now,
        until,
    )


def _supply(state: WalletState, now: datetime) -> tuple[WalletState, list[Output]]:
    """Decide disconnect / defer / cancel / reconnect from the balance and the windows."""
    config = state.config
    standing = state.balance_fen + state.shielded_fen  # what supply decisions look at
    due = not config.postpaid and standing <= config.disconnect_at_fen
    reason = "overdraft_exhausted" if config.overdraft_fen else "balance_exhausted"
    if state.supply == DISCONNECTED:
        if standing > config.reconnect_above_fen:
            state = replace(state, supply=CONNECTED)
            return state, [_decision(state, "reconnect", "balance_restored", now)]
        return state, []
    if not due:
        if state.disconnect_pending:
            state = replace(state, disconnect_pending=False, deferred_until=None)
            return state, [_decision(state, "disconnect_cancelled", "balance_restored", now)]
        return state, []
    until = config.keep_supply.window_end(now)
    manual = _manual(state)
    if manual or until is not None:
        why = "manual_keep_supply" if manual else "keep_supply_window"
        if state.disconnect_pending and state.deferred_until == until:
            return state, []
        state = replace(state, disconnect_pending=True, deferred_until=until)
        return state, [_decision(state, "disconnect_deferred", why, now, until)]
    state = replace(state, supply=DISCONNECTED, disconnect_pending=False, deferred_until=None)
    return state, [_decision(state, "disconnect", reason, now)]


def _manual(state: WalletState) -> bool:
    """The operator's keep-supply flag: the wallet's own or the account configuration's."""
    return state.manual_keep_supply or state.config.keep_supply.manual


def tick(state: WalletState, now: datetime) -> tuple[WalletState, list[Output]]:
    """Carry out a deferred disconnect whose window has ended (call on a timer)."""
    if not state.disconnect_pending or _manual(state):
        return state, []
    if state.deferred_until is not None and utc(now) < utc(state.deferred_until):
        return state, []
    return _supply(state, now)
