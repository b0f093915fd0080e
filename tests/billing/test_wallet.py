from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.ids import charge_id
from contracts.money import round_fen
from pipeline import records
from pipeline.billing.keep_supply import KeepSupplyPolicy
from pipeline.billing.wallet import apply, open_account, tick
from pipeline.billing.wallet_model import (
    Adjustment,
    Charge,
    LedgerEntry,
    LowBalanceAlarm,
    Output,
    Refund,
    Refusal,
    Replayed,
    SetKeepSupply,
    SupplyDecision,
    TopUp,
    WalletConfig,
    WalletState,
)

SH = ZoneInfo("Asia/Shanghai")
NOON = datetime(2024, 7, 1, 12, tzinfo=SH)


def kept(state: WalletState) -> WalletState:
    """The wallet as the wallet stage keeps it (pipeline/records.py), read back with its
    configuration (which the record does not carry)."""
    record = records.wallet_record(records.encode(records.WalletRecord(
        records.WalletSnapshot.of(state))))
    assert record is not None
    return record.wallet.state(state.account_id, state.config)


def charge(n: int, cost: str) -> Charge:
    end = NOON + timedelta(minutes=n)
    return Charge(charge_id("M1", end), "M1", Decimal(cost), end)


def of(outputs: list[Output], kind: type) -> list:  # type: ignore[type-arg]
    return [o for o in outputs if isinstance(o, kind)]


def funded(fen: int, config: WalletConfig | None = None) -> WalletState:
    state, _ = apply(open_account("A1", config), TopUp("t0", fen), NOON)
    return state


def test_charge_for_a_rating() -> None:
    from pipeline.billing.rating import Usage, rate
    from pipeline.billing.wallet_model import charge_for

    from .conftest import book_of

    book = book_of(
        "id: f\ncommodity: water\nunit: m3\ncurrency: CNY\ntimezone: Asia/Shanghai\nprice: 3.3333\n"
    )
    _, rating = rate(book, None, Usage(NOON, NOON + timedelta(hours=3), Decimal("1.7")))
    made = charge_for("M1", rating)
    end = NOON + timedelta(hours=3)
    assert made == Charge(charge_id("M1", end), "M1", Decimal("5.66661"), end)
    _, out = apply(funded(1000), made, NOON)
    assert of(out, LedgerEntry)[0].amount_fen == -567


def test_charges_carry_the_sub_fen_remainder() -> None:
    state = funded(10000)
    deducted = []
    for n in range(3):
        state, out = apply(state, charge(n, "0.004"), NOON)
        deducted.append(-of(out, LedgerEntry)[0].amount_fen)
    # cumulative 0.004, 0.008, 0.012 -> 0, 1, 1 fen in total
    assert deducted == [0, 1, 0]
    assert state.charged_fen == 1 and state.cumulative_cost == Decimal("0.012")
    assert state.balance_fen == 9999


@settings(max_examples=200)
@given(st.lists(st.decimals(min_value=0, max_value=50, places=10), max_size=40))
def test_rounding_rule_holds_over_any_sequence(costs: list[Decimal]) -> None:
    state = funded(10**9)
    total = Decimal(0)
    for n, cost in enumerate(costs):
        state, _ = apply(state, charge(n, str(cost)), NOON)
        total += cost
        assert 10**9 - state.balance_fen == round_fen(total)
        assert state.charged_fen == round_fen(state.cumulative_cost)


def test_top_up_idempotency() -> None:
    state = open_account("A1")
    state, out = apply(state, TopUp("k1", 5000), NOON)
    entry = of(out, LedgerEntry)[0]
    again, out2 = apply(state, TopUp("k1", 5000), NOON)
    assert again == state and out2 == [Replayed("k1", state.processed["k1"])]
    assert out2[0].original.seq == entry.seq  # type: ignore[union-attr]
    same, out3 = apply(state, TopUp("k1", 6000), NOON)
    assert same == state and of(out3, Refusal)[0].reason == "idempotency_conflict"
    _, out4 = apply(state, Refund("k1", 5000), NOON)
    assert of(out4, Refusal)[0].reason == "idempotency_conflict"
    state, out5 = apply(state, charge(1, "1.5"), NOON)
    _, out6 = apply(state, charge(1, "1.5"), NOON)
    assert of(out6, LedgerEntry) == [] and isinstance(out6[0], Replayed)
    _, out7 = apply(state, charge(1, "1.6"), NOON)
    assert of(out7, Refusal)[0].reason == "idempotency_conflict"
    assert of(out5, LedgerEntry)[0].amount_fen == -150


def test_charge_memory_is_one_watermark_per_meter() -> None:
    state = funded(10**6)
    for n in range(1, 200):
        state, _ = apply(state, charge(n, "0.10"), NOON)
    assert set(state.processed) == {"t0"}, "charges leave no key behind"
    assert list(state.last_charges) == ["M1"]
    older, out = apply(state, charge(50, "0.10"), NOON)
    assert older == state and out == [Replayed(charge(50, "0.10").charge_id, None)]
    newest, out = apply(state, charge(199, "0.10"), NOON)
    assert newest == state and isinstance(out[0], Replayed) and out[0].original is not None
    assert kept(state) == state


def test_refund_rules() -> None:
    state = funded(3000)
    same, out = apply(state, Refund("r1", 3001), NOON)
    assert same == state and of(out, Refusal)[0].reason == "insufficient_balance"
    state, out = apply(state, Refund("r1", 3000), NOON)
    assert state.balance_fen == 0 and of(out, LedgerEntry)[0].amount_fen == -3000
    for bad in (
        TopUp("x", 0),
        TopUp("x", -5),
        Refund("x", -5),
        Adjustment("x", 0, "why"),
        Adjustment("x", 5, ""),
        Charge("c", "M1", Decimal("-1"), NOON),
        Charge("c", "M1", Decimal("0.00000000001"), NOON),
    ):
        _, out = apply(state, bad, NOON)
        assert of(out, Refusal)[0].reason == "invalid_amount"


def test_ledger_entries_are_sequenced_with_deterministic_ids() -> None:
    state = open_account("A1")
    state, a = apply(state, TopUp("k1", 100), NOON)
    state, b = apply(state, Adjustment("k2", -30, "meter fault credit reversed"), NOON)
    first, second = of(a, LedgerEntry)[0], of(b, LedgerEntry)[0]
    assert (first.seq, second.seq) == (1, 2) and second.balance_fen == 70
    assert second.detail == "meter fault credit reversed"
    replay, _ = apply(open_account("A1"), TopUp("k1", 100), NOON)
    assert replay.processed["k1"].seq == 1
    assert first.entry_id != second.entry_id and first.entry_id.startswith("entry-")


def test_alarms_fire_once_on_downward_crossing_and_rearm() -> None:
    state = funded(6000)  # thresholds 5000, 2000, 1000
    assert state.alarm_level == 0
    state, out = apply(state, charge(1, "15"), NOON)  # 45.00: crosses level 1
    assert [a.level for a in of(out, LowBalanceAlarm)] == [1] and state.alarm_level == 1
    state, out = apply(state, charge(2, "1"), NOON)  # 44.00: no new crossing
    assert of(out, LowBalanceAlarm) == []
    state, out = apply(state, charge(3, "34"), NOON)  # 10.00: crosses 2 and 3 at once
    assert [a.level for a in of(out, LowBalanceAlarm)] == [2, 3] and state.alarm_level == 3
    state, out = apply(state, TopUp("t1", 1500), NOON)  # 25.00: re-arms 2 and 3
    assert state.alarm_level == 1 and of(out, LowBalanceAlarm) == []
    state, out = apply(state, charge(4, "6"), NOON)  # 19.00: level 2 fires again
    alarm = of(out, LowBalanceAlarm)[0]
    assert alarm.level == 2 and alarm.threshold_fen == 2000 and alarm.balance_fen == 1900


def test_disconnect_at_zero_and_reconnect_on_top_up() -> None:
    state = funded(100)
    state, out = apply(state, charge(1, "1"), NOON)
    decision = of(out, SupplyDecision)[0]
    assert (decision.action, decision.reason) == ("disconnect", "balance_exhausted")
    assert state.supply == "disconnected"
    state, out = apply(state, charge(2, "1"), NOON)
    assert of(out, SupplyDecision) == []  # already off
    state, out = apply(state, TopUp("t1", 50), NOON)  # balance -1.00 + 0.50 still <= 0
    assert of(out, SupplyDecision) == [] and state.supply == "disconnected"
    state, out = apply(state, TopUp("t2", 100), NOON)
    assert of(out, SupplyDecision)[0].action == "reconnect" and state.supply == "connected"


def test_overdraft_and_reconnect_threshold() -> None:
    config = WalletConfig(overdraft_fen=500, reconnect_above_fen=1000)
    state = funded(100, config)
    state, out = apply(state, charge(1, "5.99"), NOON)  # -4.99
    assert of(out, SupplyDecision) == []
    state, out = apply(state, charge(2, "0.01"), NOON)  # -5.00
    assert of(out, SupplyDecision)[0].reason == "overdraft_exhausted"
    state, out = apply(state, TopUp("t1", 1500), NOON)  # 10.00: not above 10.00
    assert of(out, SupplyDecision) == []
    state, out = apply(state, TopUp("t2", 1), NOON)
    assert of(out, SupplyDecision)[0].action == "reconnect"


def test_postpaid_never_disconnects() -> None:
    state = funded(100, WalletConfig(postpaid=True))
    state, out = apply(state, charge(1, "500"), NOON)
    assert state.balance_fen == -49900 and of(out, SupplyDecision) == []
    assert state.supply == "connected" and state.alarm_level == 3


def test_night_window_defers_until_its_end_and_tick_fires() -> None:
    policy = KeepSupplyPolicy("Asia/Shanghai", night="22:00-08:00")
    state = funded(100, WalletConfig(keep_supply=policy))
    night = datetime(2024, 7, 1, 23, tzinfo=SH)
    state, out = apply(state, charge(1, "2"), night)
    deferred = of(out, SupplyDecision)[0]
    morning = datetime(2024, 7, 2, 8, tzinfo=SH)
    assert deferred.action == "disconnect_deferred" and deferred.until == morning
    assert state.supply == "connected" and state.disconnect_pending
    state, out = apply(state, charge(2, "1"), night)  # still pending: no repeat
    assert of(out, SupplyDecision) == []
    same, out = tick(state, morning - timedelta(seconds=1))
    assert same == state and out == []
    state, out = tick(state, morning)
    assert of(out, SupplyDecision)[0].action == "disconnect" and state.supply == "disconnected"
    assert tick(state, morning)[1] == []


def test_top_up_cancels_a_deferred_disconnect() -> None:
    policy = KeepSupplyPolicy("Asia/Shanghai", night="22:00-08:00")
    state = funded(100, WalletConfig(keep_supply=policy))
    night = datetime(2024, 7, 1, 23, tzinfo=SH)
    state, _ = apply(state, charge(1, "2"), night)
    state, out = apply(state, TopUp("t1", 500), night)
    assert of(out, SupplyDecision)[0].action == "disconnect_cancelled"
    assert not state.disconnect_pending and state.deferred_until is None


def test_holiday_then_night_chain() -> None:
    policy = KeepSupplyPolicy(
        "Asia/Shanghai",
        night="22:00-06:00",
        holidays=frozenset({date(2024, 10, 1), date(2024, 10, 2)}),
    )
    state = funded(100, WalletConfig(keep_supply=policy))
    state, out = apply(state, charge(1, "2"), datetime(2024, 10, 1, 15, tzinfo=SH))
    # Holidays run to 3 Oct 00:00, the night that holds it to 06:00.
    assert of(out, SupplyDecision)[0].until == datetime(2024, 10, 3, 6, tzinfo=SH)


def test_manual_keep_supply_flag() -> None:
    state = funded(100)
    state, _ = apply(state, SetKeepSupply(on=True), NOON)
    state, out = apply(state, charge(1, "2"), NOON)
    decision = of(out, SupplyDecision)[0]
    assert decision.reason == "manual_keep_supply" and decision.until is None
    assert tick(state, NOON + timedelta(days=3))[1] == []
    state, out = apply(state, SetKeepSupply(on=False), NOON + timedelta(days=3))
    assert of(out, SupplyDecision)[0].action == "disconnect"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="descending"):
        WalletConfig(thresholds_fen=(1000, 2000, 500))
    with pytest.raises(ValueError, match="overdraft"):
        WalletConfig(overdraft_fen=-1)
    with pytest.raises(ValueError, match="reconnect"):
        WalletConfig(overdraft_fen=100, reconnect_above_fen=-200)
    with pytest.raises(ValueError):
        KeepSupplyPolicy(night="bad")


def test_open_account_with_negative_thresholds() -> None:
    state = open_account("A1", WalletConfig(thresholds_fen=(100, -100, -200), overdraft_fen=300))
    assert state.fired_levels == set() and state.alarm_level == 1


def test_a_first_top_up_below_the_thresholds_warns_once() -> None:
    state = open_account("A1")  # thresholds 5000, 2000, 1000
    assert state.alarm_level == 3, "an empty account is at the deepest level"
    state, out = apply(state, TopUp("t1", 1500), NOON)  # 15.00: under 50.00 and 20.00
    assert [a.level for a in of(out, LowBalanceAlarm)] == [1, 2] and state.alarm_level == 2
    state, out = apply(state, TopUp("t2", 100), NOON)  # 16.00: still level 2, nothing new
    assert of(out, LowBalanceAlarm) == []
    state, out = apply(state, charge(1, "6"), NOON)  # 10.00: level 3
    assert [a.level for a in of(out, LowBalanceAlarm)] == [3]


def test_state_round_trip() -> None:
    policy = KeepSupplyPolicy(
        "Asia/Shanghai", night="22:00-08:00", holidays=frozenset({date(2024, 10, 1)})
    )
    state = funded(100, WalletConfig(keep_supply=policy))
    state, _ = apply(state, charge(1, "2.0000000001"), datetime(2024, 7, 1, 23, tzinfo=UTC))
    restored = kept(state)
    assert restored == state
    import json

    stored = records.encode(records.WalletRecord(records.WalletSnapshot.of(state)))
    assert json.dumps(json.loads(stored), separators=(",", ":")).encode() == stored
