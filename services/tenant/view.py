"""What a tenant's page shows of their account (docs/tenant.md, the page): balance, alarm
level, supply state, today's and this month's usage and money by band (the site's report
day), recent ledger entries, their orders, and the postpaid bills still open."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import psycopg

from contracts.money import round_fen


@dataclass(frozen=True, slots=True)
class Usage:
    commodity: str
    band: str
    units: Decimal
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    kind: str
    amount_fen: int
    balance_fen: int


@dataclass(frozen=True, slots=True)
class TenantView:
    account_id: str
    name: str
    balance_fen: int | None
    alarm_level: int
    supply: str
    supply_state: str
    today: date
    usage_today: list[Usage]
    usage_month: list[Usage]
    entries: list[Entry]
    orders: list[tuple[str, str, int, str, datetime]]
    bills: list[OwedBill] = field(default_factory=list)


USAGE = """
SELECT m.commodity, u.band, sum(u.units), sum(u.amount_yuan)
FROM usage_daily u JOIN meters m USING (meter_id)
WHERE m.account_id = %s AND u.bucket >= %s AND u.bucket <= %s
GROUP BY 1, 2 ORDER BY 1, 2
"""


def _usage(conn: psycopg.Connection, account_id: str, first: date, last: date) -> list[Usage]:
    return [Usage(c, b or "", Decimal(u), round_fen(Decimal(a)))
            for c, b, u, a in conn.execute(USAGE, (account_id, first, last)).fetchall()]


@dataclass(frozen=True, slots=True)
class OwedBill:
    """A postpaid bill the tenant still owes on (view ``bill_arrears``, docs/tariffs.md)."""

    bill_id: str
    period_start: date
    period_end: date
    due_date: date
    state: str
    outstanding_fen: int

    @property
    def overdue(self) -> bool:
        return self.state == "overdue"

    @property
    def last_day(self) -> date:
        """The period's last day (``period_end`` is the day after it)."""
        return date.fromordinal(self.period_end.toordinal() - 1)


def open_bills(conn: psycopg.Connection, account_id: str) -> list[OwedBill]:
    """Issued bills not yet paid in full, oldest first (``period_end`` is exclusive)."""
    return [OwedBill(*row) for row in conn.execute(
        "SELECT bill_id, period_start, period_end, due_date, state, outstanding_fen "
        "FROM bill_arrears WHERE account_id = %s ORDER BY period_start, bill_id",
        (account_id,)).fetchall()]


def tenant_view(conn: psycopg.Connection, account_id: str) -> TenantView:
    """Everything the page shows, read in one repeatable snapshot."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        name, zone_name = conn.execute(
            "SELECT account_name, report_zone FROM account_places WHERE account_id = %s",
            (account_id,)).fetchone() or ("", "Asia/Shanghai")
        [(today,)] = conn.execute("SELECT (now() AT TIME ZONE %s)::date", (zone_name,)).fetchall()
        row = conn.execute("SELECT balance_fen, alarm_level, supply, supply_state FROM balances "
                           "WHERE account_id = %s", (account_id,)).fetchone()
        entries = [Entry(*r) for r in conn.execute(
            "SELECT at, kind, amount_fen, balance_fen FROM ledger WHERE account_id = %s "
            "ORDER BY seq DESC LIMIT 20", (account_id,)).fetchall()]
        orders = [tuple(r) for r in conn.execute(
            "SELECT order_no, gateway, amount_fen, state, created_at FROM payment_orders "
            "WHERE account_id = %s ORDER BY created_at DESC LIMIT 10", (account_id,)).fetchall()]
        return TenantView(
            account_id, name, row[0] if row else None, row[1] if row else 0,
            row[2] if row else "connected", row[3] if row else "connected", today,
            _usage(conn, account_id, today, today),
            _usage(conn, account_id, today.replace(day=1), today), entries,
            orders,
            open_bills(conn, account_id))
