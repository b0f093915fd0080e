"""Deductions in the wallet: custom charges and apportionment shares (docs/tariffs.md,
"Deductions and supply")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pipeline import records
from pipeline.billing.wallet import apply, open_account
from pipeline.billing.wallet_model import (
    Charge,
    Deduction,
    LedgerEntry,
    LowBalanceAlarm,
    Output,
    Refusal,
    Replayed,
    SupplyDecision,
    TopUp,
    WalletConfig,
    WalletState,
)

NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)


def run(state: WalletState, *commands: object) -> tuple[WalletState, list[Output]]:
    outs: list[Output] = []
    for command in commands:
        state, more = apply(state, command, NOW)  # type: ignore[arg-type]
        outs += more
    return state, outs


def decisions(outs: list[Output]) -> list[str]:
    return [o.action for o in outs if isinstance(o, SupplyDecision)]


def test_a_deduction_posts_its_own_kind_once_per_key_and_warns() -> None:
    state, outs = run(open_account("A1"), TopUp("t1", 6000),
                      Deduction("ci:fee:A1:2026-05", "charge_item", 4500, True, "fee"))
    entries = [o for o in outs if isinstance(o, LedgerEntry)]
    assert [(e.kind, e.key, e.amount_fen, e.balance_fen) for e in entries] == [
        ("topup", "t1", 6000, 6000), ("charge_item", "ci:fee:A1:2026-05", -4500, 1500)]
    assert [a.level for a in outs if isinstance(a, LowBalanceAlarm)] == [1, 2]
    again, repeat = run(state, Deduction("ci:fee:A1:2026-05", "charge_item", 4500, True, "fee"))
    assert again.balance_fen == 1500 and isinstance(repeat[0], Replayed)
    _, conflict = run(state, Deduction("ci:fee:A1:2026-05", "charge_item", 4000, True, "fee"))
    assert isinstance(conflict[0], Refusal) and conflict[0].reason == "idempotency_conflict"


def test_a_deduction_that_may_cut_cuts_supply() -> None:
    _, outs = run(open_account("A1"), TopUp("t1", 3000),
                  Deduction("ap:corr:A1:2026-04", "apportionment", 3000, True))
    assert decisions(outs) == ["disconnect"]


def test_a_deduction_that_may_not_cut_never_cuts_but_energy_still_does() -> None:
    state, outs = run(open_account("A1"), TopUp("t1", 1000),
                      Deduction("ci:fee:A1:2026-05", "charge_item", 10000, False))
    assert state.balance_fen == -9000 and decisions(outs) == []
    assert state.shielded_fen == 10000
    # alarms still warn the tenant
    assert [a.level for a in outs if isinstance(a, LowBalanceAlarm)] == [1, 2, 3]
    # the 10 yuan of credit still buys energy; once spent, supply is cut
    state, outs = run(state, Charge("c1", "M1", Decimal("9.99"), NOW))
    assert decisions(outs) == []
    state, outs = run(state, Charge("c2", "M1", Decimal("0.01"), NOW.replace(hour=10)))
    assert decisions(outs) == ["disconnect"]
    # a top-up that lifts the standing above zero reconnects; the fee stays owed
    state, outs = run(state, TopUp("t2", 500))
    assert decisions(outs) == ["reconnect"] and state.balance_fen == -9500
    # a balance above zero means everything owed is paid: the shield is cleared
    state, _ = run(state, TopUp("t3", 9500))
    assert state.balance_fen == 0 and state.shielded_fen == 10000
    state, _ = run(state, TopUp("t4", 1))
    assert state.balance_fen == 1 and state.shielded_fen == 0


def test_a_deduction_taking_the_last_credit_does_not_cut_when_it_may_not() -> None:
    state, outs = run(open_account("A1"), TopUp("t1", 3000),
                      Deduction("ci:fee:A1:2026-05", "charge_item", 3000, False))
    assert state.balance_fen == 0 and decisions(outs) == []
    state, outs = run(open_account("A1"), TopUp("t1", 10000),
                      Deduction("ci:fee:A1:2026-05", "charge_item", 3000, False))
    assert state.balance_fen == 7000 and state.shielded_fen == 0  # paid from the credit


def test_a_postpaid_account_is_never_cut_by_a_deduction() -> None:
    state, outs = run(open_account("A1", WalletConfig(postpaid=True)),
                      Deduction("ci:rent:A1:2026-05", "charge_item", 500000, True))
    assert state.balance_fen == -500000 and decisions(outs) == []


def test_bad_deductions_are_refused_with_a_reason() -> None:
    for bad in (Deduction("k", "charge_item", 0), Deduction("k", "charge_item", -5),
                Deduction("k", "parking_ticket", 5)):
        state, outs = run(open_account("A1"), bad)
        assert state.seq == 0 and isinstance(outs[0], Refusal)
        assert outs[0].reason == "invalid_amount"


def test_the_shield_survives_the_stage_record() -> None:
    state, _ = run(open_account("A1"), Deduction("k", "charge_item", 700, False))
    record = records.wallet_record(records.encode(records.WalletRecord(
        records.WalletSnapshot.of(state))))
    assert record is not None
    assert record.wallet.state("A1", WalletConfig()).shielded_fen == 700
    # a record written before the shield existed (one field fewer) reads as no shield
    old = records.encode(records.WalletRecord(records.WalletSnapshot.of(state)))
    trimmed = old.replace(b",700]", b"]", 1)
    assert trimmed != old
    decoded = records.wallet_record(trimmed)
    assert decoded is not None and decoded.wallet.shielded_fen == 0


@given(st.lists(st.tuples(st.sampled_from(["topup", "cut", "keep", "energy"]),
                          st.integers(min_value=1, max_value=50_000)), max_size=40),
       st.integers(min_value=0, max_value=5000))
def test_a_shielded_deduction_alone_never_decides_a_cut(steps: list[tuple[str, int]],
                                                        overdraft: int) -> None:
    """Whatever happens, a deduction that may not cut never decides a disconnect, and a
    disconnect is decided only when the balance plus the shielded deductions is at the
    cut level; the ledger always sums to the balance."""
    state = open_account("A1", WalletConfig(overdraft_fen=overdraft))
    total = 0
    for i, (kind, fen) in enumerate(steps):
        if kind == "topup":
            command: object = TopUp(f"t{i}", fen)
        elif kind == "energy":
            command = Charge(f"c{i}", "M1", Decimal(fen) / 100, NOW.replace(microsecond=i))
        else:
            command = Deduction(f"d{i}", "charge_item", fen, kind == "cut")
        state, outs = apply(state, command, NOW)  # type: ignore[arg-type]
        total += sum(o.amount_fen for o in outs if isinstance(o, LedgerEntry))
        if "disconnect" in decisions(outs):
            assert kind != "keep"
            assert state.balance_fen + state.shielded_fen <= -overdraft
        assert state.shielded_fen >= 0
        assert state.balance_fen == total
