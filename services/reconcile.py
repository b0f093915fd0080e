"""Reconciliation (`meterflow reconcile`): recompute every account's balance and report each
mismatch.

Two independent checks per account:
1. The ledger itself: sequence numbers 1..n without gaps, each entry's balance equal to the
   previous balance plus its amount, and the ``balances`` row equal to the last entry.
2. The ledger against the raw facts: the accepted readings of the account's meters are
   validated and rated again with the billing core (the same code the stream runs), and
   the exact cumulative cost rounded half-up to the fen must equal what the ledger charged;
   every recorded payment and every recorded deduction (custom charges and apportionment
   shares, ``deductions``) must be in the ledger with its amount and kind (or refused with
   a reason), and nothing else may be.
Run it when the pipeline has caught up with its input, or it reports work in flight.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from contracts.bands import BANDS
from contracts.money import round_fen
from pipeline.billing import TariffBook, load_tariff_text
from pipeline.billing.bill import bill_readings
from pipeline.billing.reading import Reading
from pipeline.configuration import MeterSetup


@dataclass(frozen=True)
class Mismatch:
    account_id: str
    check: str
    expected: str
    found: str


def _books(conn: psycopg.Connection) -> dict[str, TariffBook]:
    bodies: dict[str, list[str]] = defaultdict(list)
    rows = conn.execute("SELECT tariff_id, body FROM tariffs ORDER BY tariff_id, valid_from")
    for tariff_id, body in rows:
        bodies[tariff_id].append(body)
    return {t: TariffBook([load_tariff_text(b, t) for b in bs]) for t, bs in bodies.items()}


def _expected_charges(conn: psycopg.Connection, account: str, books: dict[str, TariffBook],
                      now: datetime) -> Decimal | None:
    """Sum of the exact interval costs of the account's meters, or None without a tariff."""
    total = Decimal(0)
    meters = conn.execute(
        "SELECT meter_id, commodity, tariff_id, multiplier, register_max, max_rate FROM meters "
        "WHERE account_id = %s", (account,)).fetchall()
    for meter_id, commodity, tariff_id, multiplier, register_max, max_rate in meters:
        if tariff_id not in books:
            return None
        setup = MeterSetup(meter_id, commodity, account, tariff_id, multiplier, register_max,
                           max_rate)
        readings = [
            Reading(meter_id, ts, value, {b: v for b, v in zip(
                BANDS, bands, strict=True) if v is not None})
            for ts, value, *bands in conn.execute(
                "SELECT ts, value, sharp, peak, flat, valley FROM readings "
                "WHERE meter_id = %s ORDER BY ts", (meter_id,))
        ]
        for bill in bill_readings(books[tariff_id], readings, setup.meter_config(), now,
                                  multiplier):
            total += bill.cost
    return total


#: What should be in the ledger besides charges: payments (signed as posted) and
#: deductions (taken from the balance), by idempotency key.
RECORDED = """
SELECT idempotency_key, kind, CASE kind WHEN 'refund' THEN -amount_fen ELSE amount_fen END
FROM payments WHERE account_id = %(a)s
UNION ALL
SELECT idempotency_key, kind, -amount_fen FROM deductions WHERE account_id = %(a)s
"""


def _what(kind: str) -> str:
    return "deduction" if kind in ("charge_item", "apportionment") else "payment"


def reconcile(conn: psycopg.Connection, now: datetime | None = None) -> list[Mismatch]:
    now = now or datetime.now(UTC)
    books = _books(conn)
    found: list[Mismatch] = []
    for (account,) in conn.execute("SELECT account_id FROM accounts ORDER BY 1").fetchall():
        found += _ledger_checks(conn, account)
        found += _fact_checks(conn, account, books, now)
    return found


def _ledger_checks(conn: psycopg.Connection, account: str) -> list[Mismatch]:
    out: list[Mismatch] = []
    balance = 0
    entries = conn.execute("SELECT seq, amount_fen, balance_fen FROM ledger "
                           "WHERE account_id = %s ORDER BY seq", (account,)).fetchall()
    for expected_seq, (seq, amount, after) in enumerate(entries, 1):
        if seq != expected_seq:
            out.append(Mismatch(account, "ledger sequence", str(expected_seq), str(seq)))
            break
        balance += amount
        if after != balance:
            out.append(Mismatch(account, f"ledger balance at seq {seq}", str(balance),
                                str(after)))
            break
    row = conn.execute("SELECT balance_fen FROM balances WHERE account_id = %s",
                       (account,)).fetchone()
    if row is not None and row[0] != balance:
        out.append(Mismatch(account, "balances row", str(balance), str(row[0])))
    return out


def _fact_checks(conn: psycopg.Connection, account: str, books: dict[str, TariffBook],
                 now: datetime) -> list[Mismatch]:
    out: list[Mismatch] = []
    cost = _expected_charges(conn, account, books, now)
    [(charged,)] = conn.execute(
        "SELECT coalesce(-sum(amount_fen), 0) FROM ledger WHERE account_id = %s "
        "AND kind = 'charge'", (account,)).fetchall()
    if cost is not None and round_fen(cost) != charged:
        out.append(Mismatch(account, "charges vs readings", f"{round_fen(cost)} fen "
                            f"(exact cost {cost} yuan)", f"{charged} fen"))
    recorded: dict[str, tuple[str, int]] = {str(k): (str(kind), int(fen)) for k, kind, fen in
                                            conn.execute(RECORDED, {"a": account}).fetchall()}
    posted: dict[str, tuple[str, int]] = {str(r): (str(kind), int(fen)) for r, kind, fen in
                                          conn.execute(
        "SELECT ref, kind, amount_fen FROM ledger WHERE account_id = %s AND kind <> 'charge'",
        (account,)).fetchall()}
    refused = {detail.rsplit("(key ", 1)[-1].rstrip(")") for (detail,) in conn.execute(
        "SELECT detail FROM alarms WHERE account_id = %s AND kind = 'refused'", (account,))}
    for key, (kind, amount) in sorted(recorded.items()):
        if key in refused:
            continue
        if posted.get(key) != (kind, amount):
            out.append(Mismatch(account, f"{_what(kind)} {key}", f"{kind} of {amount} fen posted",
                                "not in the ledger" if key not in posted
                                else f"{posted[key][0]} of {posted[key][1]} fen"))
    for key in sorted(set(posted) - set(recorded)):
        out.append(Mismatch(account, f"ledger entry {key}", "a recorded payment or deduction",
                            "nothing recorded with this key"))
    return out

