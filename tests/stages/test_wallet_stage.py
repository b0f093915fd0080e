"""The per-account stage: charges, payments, ticks and command outcomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from contracts import topics
from contracts.errors import PayloadError
from contracts.messages import PaymentMessage, RatedInterval, WalletSignal
from pipeline import records
from pipeline.billing import WalletConfig
from pipeline.billing.keep_supply import KeepSupplyPolicy
from pipeline.billing.supply import CommandPolicy
from pipeline.configuration import AccountSetup
from pipeline.meter_stage import Out
from pipeline.records import WalletRecord
from pipeline.wallet_stage import on_charge, on_payment, on_signal

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 7, 3, 9, 0, tzinfo=UTC)  # the data below is two days old
ACCOUNT = AccountSetup("A1", WalletConfig(thresholds_fen=(5000, 2000, 1000)), ("M1", "M2"))
POLICY = CommandPolicy(ttl=timedelta(minutes=15), retry_base=timedelta(minutes=1),
                       max_attempts=3)


def rated(minute: int, cost: str, meter: str = "M1") -> RatedInterval:
    end = T0 + timedelta(minutes=minute)
    return RatedInterval(interval_id=f"charge-{meter}-{minute}", meter_id=meter,
                         account_id="A1", tariff_id="t", start=(end - timedelta(minutes=15))
                         .isoformat(), end=end.isoformat(), units="1", cost=cost, lines=[],
                         surcharges=[])


def payment(key: str, fen: int, kind: str = "topup", at: datetime = T0) -> PaymentMessage:
    return PaymentMessage(idempotency_key=key, account_id="A1", kind=kind, amount_fen=fen,
                          at=at.isoformat())


def bodies(outs: list[Out], topic: str) -> list[dict[str, Any]]:
    return [json.loads(o.value) for o in outs if o.topic == topic]


def kinds(outs: list[Out]) -> list[str]:
    return [json.loads(o.value)["kind"] if o.topic == topics.ALARMS else o.topic for o in outs]


def charge_all(record: WalletRecord | None, costs: list[str], now: datetime = NOW
               ) -> tuple[WalletRecord | None, list[Out]]:
    every: list[Out] = []
    for minute, cost in enumerate(costs, 1):
        record, outs = on_charge(record, rated(15 * minute, cost), ACCOUNT, now, POLICY)
        every += outs
    return record, every


def test_alarms_once_each_a_disconnect_at_zero_and_a_reconnect_on_topup() -> None:
    record, outs = on_payment(None, payment("k1", 6000), ACCOUNT, NOW, POLICY)
    assert kinds(outs) == [topics.LEDGER, topics.BALANCES]
    record, outs = charge_all(record, ["15.00", "25.00", "10.00", "5.00", "5.00"])
    alarms = bodies(outs, topics.ALARMS)
    assert [f"{a['kind']}:{a['level']}" for a in alarms] == [
        "low_balance:1", "low_balance:2", "low_balance:3", "disconnect:None"]
    commands = bodies(outs, topics.COMMANDS)
    assert sorted((c["meter_id"], c["action"]) for c in commands) == [
        ("M1", "disconnect"), ("M2", "disconnect")]
    assert record is not None and record.wallet.balance_fen == 0
    last = bodies(outs, topics.BALANCES)[-1]
    assert (last["supply"], last["supply_state"]) == ("disconnected", "cut_requested")
    record, outs = on_payment(record, payment("k2", 100), ACCOUNT, NOW, POLICY)
    assert sorted(c["action"] for c in bodies(outs, topics.COMMANDS)) == ["reconnect"] * 2
    assert bodies(outs, topics.BALANCES)[-1]["supply_state"] == "reconnect_requested"


def test_late_data_cuts_off_now_a_command_made_now_with_its_deadline_from_now() -> None:
    record, _ = on_payment(None, payment("k1", 100), ACCOUNT, NOW, POLICY)
    record, outs = charge_all(record, ["2.00"])
    [ledger] = bodies(outs, topics.LEDGER)
    assert ledger["at"] == (T0 + timedelta(minutes=15)).isoformat(), "dated by its interval"
    for command in bodies(outs, topics.COMMANDS):
        assert command["issued_at"] == NOW.isoformat()
        assert command["deadline"] == (NOW + POLICY.ttl).isoformat()
    assert all(a["at"] == NOW.isoformat() for a in bodies(outs, topics.ALARMS))


def test_an_expired_disconnect_is_issued_again_and_operators_see_it() -> None:
    record, _ = on_payment(None, payment("k1", 100), ACCOUNT, NOW, POLICY)
    record, outs = charge_all(record, ["2.00"])
    first = {c["meter_id"]: c["command_id"] for c in bodies(outs, topics.COMMANDS)}
    later = NOW + timedelta(minutes=16)
    expired = WalletSignal(kind="command_outcome", at=later.isoformat(),
                           command_id=first["M1"], meter_id="M1", status="expired",
                           detail="not confirmed by the deadline before any attempt")
    record, outs = on_signal(record, expired, ACCOUNT, later, POLICY)
    [notice] = bodies(outs, topics.ALARMS)
    assert notice["kind"] == "command_retry" and "attempt 1 of 3" in notice["detail"]
    [balance] = bodies(outs, topics.BALANCES)
    assert balance["wake_at"] == (later + timedelta(minutes=1)).isoformat()
    assert bodies(outs, topics.COMMANDS) == []
    tick = WalletSignal(kind="tick", at=(later + timedelta(minutes=1)).isoformat())
    record, outs = on_signal(record, tick, ACCOUNT, later + timedelta(minutes=1), POLICY)
    [again] = bodies(outs, topics.COMMANDS)
    assert again["meter_id"] == "M1" and again["command_id"] != first["M1"]
    assert again["issued_at"] == (later + timedelta(minutes=1)).isoformat()
    applied = WalletSignal(kind="command_outcome", at=later.isoformat(),
                           command_id=again["command_id"], meter_id="M1", status="applied")
    record, _ = on_signal(record, applied, ACCOUNT, later + timedelta(minutes=2), POLICY)
    applied2 = WalletSignal(kind="command_outcome", at=later.isoformat(),
                            command_id=first["M2"], meter_id="M2", status="applied")
    record, outs = on_signal(record, applied2, ACCOUNT, later + timedelta(minutes=3), POLICY)
    assert bodies(outs, topics.BALANCES)[-1]["supply_state"] == "cut_confirmed"


def test_a_replayed_payment_changes_nothing_and_a_refund_needs_the_balance() -> None:
    record, _ = on_payment(None, payment("k1", 500), ACCOUNT, NOW, POLICY)
    record, _ = on_payment(record, payment("k2", 700), ACCOUNT, NOW, POLICY)
    again, outs = on_payment(record, payment("k1", 500), ACCOUNT, NOW, POLICY)
    assert again == record and outs == []
    assert record is not None and record.wallet.balance_fen == 1200
    record, outs = on_payment(record, payment("r1", 5000, "refund"), ACCOUNT, NOW, POLICY)
    [refused] = bodies(outs, topics.ALARMS)
    assert refused["kind"] == "refused" and "insufficient_balance" in refused["detail"]
    _, outs = on_payment(record, payment("r2", 200, "refund"), ACCOUNT, NOW, POLICY)
    assert bodies(outs, topics.LEDGER)[0]["amount_fen"] == -200


def test_fractional_costs_carry_the_sub_fen_remainder() -> None:
    record, _ = on_payment(None, payment("k", 10000), ACCOUNT, NOW, POLICY)
    record, _ = charge_all(record, ["0.0033333333"] * 3)
    # 3 x 0.0033333333 = 0.0099999999 yuan -> 1 fen charged in total, not 0 and not 3
    assert record is not None and record.wallet.balance_fen == 9999


def test_a_tick_without_anything_due_changes_nothing() -> None:
    record, _ = on_payment(None, payment("k", 100), ACCOUNT, NOW, POLICY)
    after, outs = on_signal(record, WalletSignal(kind="tick", at=NOW.isoformat()), ACCOUNT,
                            NOW + timedelta(hours=5), POLICY)
    assert after == record and outs == []


def test_a_deferred_disconnect_happens_on_the_tick_after_the_night_window() -> None:
    night = AccountSetup("A1", WalletConfig(keep_supply=KeepSupplyPolicy(
        "Asia/Shanghai", "22:00-06:00")), ("M1",))
    evening = datetime(2026, 7, 1, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    record, _ = on_payment(None, payment("k", 100, at=evening), night, evening, POLICY)
    record, outs = on_charge(record, rated(15, "2.00"), night, evening, POLICY)
    assert kinds(outs)[-2] == "disconnect_deferred" and bodies(outs, topics.COMMANDS) == []
    morning = datetime(2026, 7, 2, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert datetime.fromisoformat(bodies(outs, topics.BALANCES)[-1]["wake_at"]) == morning
    early, outs = on_signal(record, WalletSignal(kind="tick", at=evening.isoformat()), night,
                            evening + timedelta(hours=1), POLICY)
    assert bodies(outs, topics.COMMANDS) == []
    _, outs = on_signal(early, WalletSignal(kind="tick", at=morning.isoformat()), night,
                        morning, POLICY)
    assert [c["action"] for c in bodies(outs, topics.COMMANDS)] == ["disconnect"]


def test_manual_keep_supply_in_the_configuration_defers_and_its_end_lets_the_tick_cut() -> None:
    manual = AccountSetup("A1", WalletConfig(keep_supply=KeepSupplyPolicy(manual=True)),
                          ("M1",))
    record, _ = on_payment(None, payment("t1", 100), manual, NOW, POLICY)
    record, outs = on_charge(record, rated(15, "2.00"), manual, NOW, POLICY)
    assert bodies(outs, topics.ALARMS)[-1]["detail"] == "manual_keep_supply"
    assert bodies(outs, topics.BALANCES)[-1]["wake_at"] is None
    held, outs = on_signal(record, WalletSignal(kind="tick", at=NOW.isoformat()), manual,
                           NOW + timedelta(hours=1), POLICY)
    assert bodies(outs, topics.COMMANDS) == []
    # Switched off in the configuration: the next tick carries out the cut.
    plain = AccountSetup("A1", WalletConfig(), ("M1",))
    _, outs = on_signal(held, WalletSignal(kind="tick", at=NOW.isoformat()), plain,
                        NOW + timedelta(hours=2), POLICY)
    assert [c["action"] for c in bodies(outs, topics.COMMANDS)] == ["disconnect"]


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(PayloadError, match="field kind"):
        on_payment(None, payment("k", 1, kind="gift"), ACCOUNT, NOW, POLICY)
    with pytest.raises(PayloadError, match="field end"):
        on_charge(None, msgspec.structs.replace(rated(15, "1"), end="yesterday"), ACCOUNT,
                  NOW, POLICY)
    with pytest.raises(PayloadError, match="field cost"):
        on_charge(None, msgspec.structs.replace(rated(15, "1"), cost="1e"), ACCOUNT, NOW,
                  POLICY)
    with pytest.raises(PayloadError, match="field kind"):
        on_signal(None, WalletSignal(kind="noise", at=NOW.isoformat()), ACCOUNT, NOW, POLICY)
    with pytest.raises(PayloadError, match="command_id"):
        on_signal(None, WalletSignal(kind="command_outcome", at=NOW.isoformat()), ACCOUNT,
                  NOW, POLICY)


def test_records_survive_their_codec() -> None:
    record, _ = on_payment(None, payment("k1", 100), ACCOUNT, NOW, POLICY)
    record, _ = charge_all(record, ["2.00", "0.0001"])
    assert record is not None
    assert records.wallet_record(records.encode(record)) == record


def test_deductions_from_the_payments_topic_post_their_kind_and_honour_may_cut() -> None:
    record, _ = on_payment(None, payment("k1", 3000), ACCOUNT, NOW, POLICY)
    shielded = PaymentMessage(idempotency_key="ci:fee:A1:2026-07", account_id="A1",
                              kind="charge_item", amount_fen=3000, at=T0.isoformat(),
                              note="Property fee 2026-07", may_cut=False)
    record, outs = on_payment(record, shielded, ACCOUNT, NOW, POLICY)
    [entry] = bodies(outs, topics.LEDGER)
    assert (entry["kind"], entry["key"], entry["amount_fen"], entry["detail"]) == (
        "charge_item", "ci:fee:A1:2026-07", -3000, "Property fee 2026-07")
    assert kinds(outs).count("disconnect") == 0 and "low_balance" in kinds(outs)
    assert not bodies(outs, topics.COMMANDS)
    share = PaymentMessage(idempotency_key="ap:corr:A1:2026-06", account_id="A1",
                           kind="apportionment", amount_fen=3000, at=T0.isoformat())
    record, outs = on_payment(record, share, ACCOUNT, NOW, POLICY)
    assert bodies(outs, topics.LEDGER)[0]["kind"] == "apportionment"
    # may_cut defaults to True: this one uses up the 30 yuan of credit the fee left to
    # energy, and cuts
    assert "disconnect" in kinds(outs)
    _, outs = on_payment(record, share, ACCOUNT, NOW, POLICY)
    assert not bodies(outs, topics.LEDGER)  # once per key
