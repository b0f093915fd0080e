"""Stage records survive their codec exactly, and stay small whatever the history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from pipeline import records
from pipeline.billing.reading import Reading
from pipeline.billing.supply import MeterCommand, Supply
from pipeline.billing.tier_state import TierState
from pipeline.billing.validation import MeterState
from pipeline.billing.wallet_model import LastCharge, Processed
from pipeline.records import MeterRecord, WalletRecord, WalletSnapshot

zones = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
instants = st.builds(lambda s, z: datetime(2026, 1, 1, tzinfo=UTC).astimezone(z)
                     + timedelta(seconds=s), st.integers(0, 10**8), zones)
decimals = st.decimals(min_value=0, max_value=999999, places=3)
fractions = st.fractions(min_value=0, max_value=10**6, max_denominator=10**9)


@given(instants, decimals, st.dictionaries(st.sampled_from(["peak", "valley"]), decimals),
       st.none() | st.builds(TierState, st.just("t"), st.just("month:2026-01"), fractions),
       st.booleans(), st.binary(max_size=64))
def test_meter_records_round_trip(ts: datetime, value: Decimal, registers: dict[str, Decimal],
                                  tiers: TierState | None, offline: bool, recent: bytes) -> None:
    record = MeterRecord(MeterState("M1", Reading("M1", ts, value, registers), ts), tiers,
                         offline, recent)
    again = records.meter_record(records.encode(record))
    assert again == record
    assert again is not None and again.validation.last is not None
    assert again.validation.last.ts.utcoffset() == ts.utcoffset()


@given(st.integers(-10**9, 10**9), st.integers(0, 10**6),
       st.decimals(min_value=0, max_value=10**6, places=10), st.frozensets(st.sampled_from(
           [1, 2, 3])), st.none() | instants)
def test_wallet_records_round_trip(balance: int, seq: int, cost: Decimal,
                                   levels: frozenset[int], until: datetime | None) -> None:
    at = datetime(2026, 7, 1, tzinfo=UTC)
    snapshot = WalletSnapshot(
        balance, seq, cost, 12, levels, "disconnected", True, until, False,
        {"k1": Processed("topup", "100", 1, 100)},
        {"M1": LastCharge(at, "charge-1", Processed("charge", "0.5", 2, 50))})
    supply = Supply({"M1": MeterCommand("M1", "disconnect", "d", 2, "c", at,
                                        at + timedelta(minutes=15), "expired", at, "x")})
    record = WalletRecord(snapshot, supply)
    assert records.wallet_record(records.encode(record)) == record


def test_a_meter_record_does_not_grow_with_history() -> None:
    from pipeline.billing.recent import DEPTH, remember

    recent = b""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sizes = []
    for n in range(5 * DEPTH):
        reading = Reading("M1", start + timedelta(minutes=15 * n), Decimal(n))
        recent = remember(recent, reading, "accepted")
        record = MeterRecord(MeterState("M1", reading, start), TierState("t", "p", Fraction(n)),
                             False, recent)
        sizes.append(len(records.encode(record)))
    assert max(sizes[2 * DEPTH:]) - min(sizes[2 * DEPTH:]) < 16
