"""Postpaid bills: the billing run, operators' moves, settlement and notices.

* ``run_bills``: a draft per postpaid account and period, each in a transaction of its
  own; the partial unique index (account, period) makes a run that died midway and is
  started again add nothing. An account whose recorded deductions have not reached the
  ledger yet is left for the next run (its bill would miss them).
* ``confirm`` (with adjustments, posted to the ledger as adjustments dated at the period's
  end, so the bill still equals its ledger), ``issue``, ``void``: the caller audits.
* ``refresh``: payments settle the oldest bills first; bills past their due day become
  ``overdue`` (each such move is in the audit log as ``bill.settle`` by
  ``billing-scheduler``); ``bill_issued`` and ``bill_overdue`` alarms go out through the outbox to
  ``meterflow.alarms`` (the notifier announces them), each once per bill.
Rules: pipeline/billing/postpaid.py and docs/tariffs.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from contracts.ids import derive_id
from contracts.messages import AlarmMessage, as_dict
from contracts.money import yuan_text
from contracts.topics import ALARMS
from pipeline.billing.postpaid import (
    BillError,
    BillLine,
    OpenBill,
    UsageLine,
    move,
    settle,
    status,
    totals,
    usage_lines,
)
from services.payments.store import record_payment

ADJUSTMENT_PREFIX = "billadj:"
#: When a ledger entry counts: a charge at its interval's end belongs to the period that
#: interval ends in, ``(start, end]`` (a day's last interval ends at midnight); every other
#: entry at its time, ``[start, end)``.
WHEN = "(CASE WHEN kind = 'charge' THEN at - interval '1 microsecond' ELSE at END)"
ACCOUNTS = """
SELECT a.account_id, p.report_zone FROM accounts a JOIN account_places p USING (account_id)
WHERE a.billing_mode = 'postpaid'
  AND (%(site)s::text IS NULL OR p.site_id = %(site)s)
  AND (%(accounts)s::text[] IS NULL OR a.account_id = ANY(%(accounts)s::text[]))
ORDER BY a.account_id
"""
SUMS = f"""
SELECT coalesce(sum(amount_fen) FILTER (WHERE {WHEN} < %(t0)s), 0),
       coalesce(sum(amount_fen) FILTER (WHERE {WHEN} >= %(t0)s AND kind IN
                ('topup', 'refund', 'adjustment') AND ref NOT LIKE 'billadj:%%'), 0)
FROM ledger WHERE account_id = %(a)s AND {WHEN} < %(t1)s
"""
CHARGED = """
SELECT coalesce(m.commodity, 'electricity'), -sum(l.amount_fen)
FROM ledger l LEFT JOIN meters m ON m.meter_id = l.meter_id
WHERE l.account_id = %(a)s AND l.kind = 'charge' AND l.at > %(t0)s AND l.at <= %(t1)s
GROUP BY 1
"""
USAGE = """
SELECT m.commodity, l.band, l.step, sum(l.units), sum(l.amount_yuan)
FROM rated_lines l JOIN meters m ON m.meter_id = l.meter_id
WHERE l.account_id = %(a)s AND l.end_ts > %(t0)s AND l.end_ts <= %(t1)s
GROUP BY 1, 2, 3 ORDER BY 1, 2 NULLS FIRST, 3 NULLS FIRST
"""
DEDUCTED = """
SELECT l.kind, coalesce(d.detail, l.detail), -l.amount_fen, l.ref
FROM ledger l LEFT JOIN deductions d ON d.idempotency_key = l.ref
WHERE l.account_id = %(a)s AND l.at >= %(t0)s AND l.at < %(t1)s
  AND (l.kind IN ('charge_item', 'apportionment') OR l.ref LIKE 'billadj:%%')
ORDER BY l.seq
"""
WAITING = """
SELECT count(*) FROM deductions d WHERE d.account_id = %(a)s AND d.created_at < %(now)s
  AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.account_id = d.account_id
                  AND l.ref = d.idempotency_key)
"""


@dataclass
class BillRun:
    """What a run did: bills made, periods already billed, accounts left for later."""

    run_id: str
    made: list[str] = field(default_factory=list)
    already: int = 0
    waiting: list[str] = field(default_factory=list)


def local_bounds(start: date, end: date, zone: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    return (datetime.combine(start, time(0), tz).astimezone(UTC),
            datetime.combine(end, time(0), tz).astimezone(UTC))


def bill_lines(conn: psycopg.Connection, account_id: str, t0: datetime, t1: datetime
               ) -> list[BillLine]:
    """The bill's lines from the ledger (and rated_lines to split energy and water)."""
    params = {"a": account_id, "t0": t0, "t1": t1}
    charged = {str(c): int(f) for c, f in conn.execute(CHARGED, params).fetchall()}
    usage = [UsageLine(str(c), b, None if s is None else int(s), Decimal(u), Decimal(y))
             for c, b, s, u, y in conn.execute(USAGE, params).fetchall()]
    lines: list[BillLine] = []
    for commodity in ("electricity", "water"):
        lines += usage_lines(commodity, charged.get(commodity, 0), usage)
    for kind, label, fen, ref in conn.execute(DEDUCTED, params).fetchall():
        line_kind = "adjustment" if str(ref).startswith(ADJUSTMENT_PREFIX) else str(kind)
        lines.append(BillLine(line_kind, str(label)[:200], int(fen), ref=str(ref)))
    return lines


def _insert_lines(conn: psycopg.Connection, bill_id: str, lines: Sequence[BillLine],
                  first: int = 0) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bill_lines (bill_id, line, kind, label, band, step, units, amount_fen, "
            "ref) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(bill_id, first + i, ln.kind, ln.label, ln.band, ln.step, ln.units, ln.amount_fen,
              ln.ref) for i, ln in enumerate(lines)])


#: Called after each account's bill is committed (tests stop a run there).
AfterAccount = Callable[[str], None]


def run_bills(conn: psycopg.Connection, start: date, end: date, *, due_days: int = 15,
              site_id: str | None = None, account_ids: Sequence[str] | None = None,
              now: datetime | None = None, after_account: AfterAccount | None = None
              ) -> BillRun:
    """Draft bills of local days ``[start, end)`` for every postpaid account (of a site, or
    the accounts named); an account billed for the period before is counted, not billed."""
    if end <= start:
        raise BillError(f"end: {end} must be after start {start}")
    now = now or datetime.now(UTC)
    run = BillRun(f"run-{uuid.uuid4().hex[:12]}")
    accounts = conn.execute(ACCOUNTS, {"site": site_id, "accounts": None if account_ids is None
                                       else list(account_ids)}).fetchall()
    for account_id, zone in accounts:
        account_id, zone = str(account_id), str(zone)
        with conn.transaction():
            conn.execute("SELECT 1 FROM accounts WHERE account_id = %s FOR UPDATE",
                         (account_id,))
            if conn.execute("SELECT 1 FROM bills WHERE account_id = %s AND period_start = %s "
                            "AND period_end = %s AND state <> 'void'",
                            (account_id, start, end)).fetchone() is not None:
                run.already += 1
                continue
            row = conn.execute(WAITING, {"a": account_id, "now": now}).fetchone()
            if row is not None and int(row[0]) > 0:
                run.waiting.append(f"{account_id}: {row[0]} deduction(s) not in the ledger yet")
                continue
            t0, t1 = local_bounds(start, end, zone)
            sums = conn.execute(SUMS, {"a": account_id, "t0": t0, "t1": t1}).fetchone()
            opening, paid = (0, 0) if sums is None else (int(sums[0]), int(sums[1]))
            lines = bill_lines(conn, account_id, t0, t1)
            total = totals(opening, lines, paid)
            bill_id = f"B{start:%Y%m%d}-{account_id}-{uuid.uuid4().hex[:6]}"
            conn.execute(
                "INSERT INTO bills (bill_id, account_id, period_start, period_end, zone, "
                "due_date, opening_fen, charges_fen, payments_fen, closing_fen, run_id, "
                "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s)",
                (bill_id, account_id, start, end, zone, end + timedelta(days=due_days),
                 total.opening_fen, total.charges_fen, total.payments_fen, total.closing_fen,
                 run.run_id, now, now))
            _insert_lines(conn, bill_id, lines)
            run.made.append(bill_id)
        if after_account is not None:
            after_account(account_id)
    return run


def get_bill(conn: psycopg.Connection, bill_id: str, lock: bool = False
             ) -> dict[str, object] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM bills WHERE bill_id = %s"
                           + (" FOR UPDATE" if lock else ""), (bill_id,)).fetchone()


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A correction made when confirming: ``amount_fen`` > 0 adds to the bill, < 0 takes
    off; posted to the ledger as a reversing adjustment."""

    amount_fen: int
    reason: str


def post_adjustments(conn: psycopg.Connection, bill_id: str,
                     adjustments: Sequence[Adjustment], operator: str) -> None:
    """Record each adjustment (idempotent per bill and position) before the bill moves."""
    bill = get_bill(conn, bill_id)
    if bill is None:
        raise BillError(f"bill_id: no bill {bill_id!r}")
    if bill["state"] != "draft":
        raise BillError(f"state: only a draft bill takes adjustments (this one is "
                        f"{bill['state']})")
    end = datetime.combine(bill["period_end"], time(0),  # type: ignore[arg-type]
                           ZoneInfo(str(bill["zone"]))).astimezone(UTC)
    for index, adj in enumerate(adjustments):
        if adj.amount_fen == 0 or not adj.reason.strip():
            raise BillError(f"adjustments[{index}]: needs a non-zero amount and a reason")
        record_payment(conn, str(bill["account_id"]), "adjustment", -adj.amount_fen,
                       f"{ADJUSTMENT_PREFIX}{bill_id}:{index}", operator[:64],
                       f"bill {bill_id}: {adj.reason}"[:500],
                       now=end - timedelta(microseconds=1))


def apply_adjustments(conn: psycopg.Connection, bill_id: str,
                      adjustments: Sequence[Adjustment]) -> None:
    """Put the posted adjustments on the bill as lines and update its totals (in the
    caller's transaction)."""
    bill = get_bill(conn, bill_id, lock=True)
    assert bill is not None
    row = conn.execute("SELECT coalesce(max(line) + 1, 0) FROM bill_lines WHERE bill_id = %s",
                       (bill_id,)).fetchone()
    first = int(row[0]) if row else 0
    lines = [BillLine("adjustment", adj.reason[:200], adj.amount_fen,
                      ref=f"{ADJUSTMENT_PREFIX}{bill_id}:{i}")
             for i, adj in enumerate(adjustments)]
    _insert_lines(conn, bill_id, lines, first)
    extra = sum(line.amount_fen for line in lines)
    conn.execute("UPDATE bills SET charges_fen = charges_fen + %s, closing_fen = closing_fen - "
                 "%s, updated_at = now() WHERE bill_id = %s", (extra, extra, bill_id))


def transition(conn: psycopg.Connection, bill_id: str, action: str, reason: str = "",
               now: datetime | None = None) -> tuple[dict[str, object], dict[str, object]]:
    """Move a bill (in the caller's transaction); return (before, after). Issuing queues
    the ``bill_issued`` notice."""
    before = get_bill(conn, bill_id, lock=True)
    if before is None:
        raise BillError(f"bill_id: no bill {bill_id!r}")
    state = move(str(before["state"]), action)
    if action == "void" and not reason.strip():
        raise BillError("reason: a bill is voided with a reason")
    conn.execute("UPDATE bills SET state = %s, void_reason = %s, updated_at = now() "
                 "WHERE bill_id = %s", (state, reason[:500] if action == "void" else "",
                                        bill_id))
    after = get_bill(conn, bill_id)
    assert after is not None
    if action == "issue":
        notice(conn, after, "bill_issued", now or datetime.now(UTC))
    return before, after


def notice(conn: psycopg.Connection, bill: dict[str, object], kind: str, now: datetime) -> bool:
    """Queue one notice of a bill on ``meterflow.alarms`` (once per bill and kind)."""
    new = conn.execute("INSERT INTO bill_notices (bill_id, kind, at) VALUES (%s, %s, %s) "
                       "ON CONFLICT DO NOTHING RETURNING bill_id",
                       (bill["bill_id"], kind, now)).fetchone()
    if new is None:
        return False
    owed = int(bill["charges_fen"]) - int(bill["paid_fen"])  # type: ignore[call-overload]
    detail = (f"bill {bill['bill_id']} for {bill['period_start']} to {bill['period_end']}: "
              f"{yuan_text(owed)} yuan due by {bill['due_date']}")
    message = AlarmMessage(
        alarm_id=derive_id(kind, str(bill["bill_id"])), account_id=str(bill["account_id"]),
        kind=kind, level=None, threshold_fen=None, balance_fen=-owed, at=now.isoformat(),
        detail=detail)
    conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                 (ALARMS, bill["account_id"], Jsonb(as_dict(message))))
    return True


POOL = f"""
SELECT coalesce(sum(amount_fen) FILTER (WHERE {WHEN} < %(t0)s), 0)
     + coalesce(sum(amount_fen) FILTER (WHERE {WHEN} >= %(t0)s AND kind IN
                ('topup', 'refund', 'adjustment') AND ref NOT LIKE 'billadj:%%'), 0)
FROM ledger WHERE account_id = %(a)s
"""


#: A move made by settlement (payments, the due day) is audited as the scheduler's own.
SETTLED = """
INSERT INTO audit_log (user_name, role, action, target, before, after, request_id)
VALUES ('billing-scheduler', 'system', 'bill.settle', %s, %s, %s, %s)
"""


def settle_account(conn: psycopg.Connection, account_id: str, now: datetime) -> int:
    """Settle an account's issued bills, oldest first; return how many changed state.

    What pays the bills: the balance before the first issued bill's period plus every
    payment since (adjustments of bills are lines, not payments).
    """
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        bills = cur.execute(
            "SELECT * FROM bills WHERE account_id = %s AND state IN ('issued', 'partly_paid', "
            "'overdue', 'paid') ORDER BY period_start, bill_id FOR UPDATE",
            (account_id,)).fetchall()
        if not bills:
            return 0
        first = bills[0]
        t0, _ = local_bounds(first["period_start"], first["period_end"], first["zone"])
        row = conn.execute(POOL, {"a": account_id, "t0": t0}).fetchone()
        pool = int(row[0]) if row else 0
        open_bills = [OpenBill(b["bill_id"], b["period_start"], int(b["charges_fen"]),
                               b["due_date"]) for b in bills]
        paid = settle(open_bills, pool)
        changed = 0
        for bill, open_bill in zip(bills, open_bills, strict=True):
            today = now.astimezone(ZoneInfo(bill["zone"])).date()
            state = status(open_bill, paid[bill["bill_id"]], today, bill["state"])
            if state == "overdue" and bill["state"] != "overdue":
                notice(conn, {**bill, "paid_fen": paid[bill["bill_id"]]}, "bill_overdue", now)
            if (state, paid[bill["bill_id"]]) != (bill["state"], bill["paid_fen"]):
                conn.execute("UPDATE bills SET state = %s, paid_fen = %s, updated_at = now() "
                             "WHERE bill_id = %s", (state, paid[bill["bill_id"]],
                                                    bill["bill_id"]))
                conn.execute(SETTLED, (
                    f"bill:{bill['bill_id']}",
                    Jsonb({"state": bill["state"], "paid_fen": int(bill["paid_fen"])}),
                    Jsonb({"state": state, "paid_fen": paid[bill["bill_id"]]}),
                    f"billing:{now.isoformat()}"))
                changed += 1
        return changed


def refresh(conn: psycopg.Connection, now: datetime) -> int:
    """Settle every account with issued bills; return how many bills changed state."""
    accounts = conn.execute("SELECT DISTINCT account_id FROM bills WHERE state IN ('issued', "
                            "'partly_paid', 'overdue') ORDER BY 1").fetchall()
    return sum(settle_account(conn, str(a), now) for (a,) in accounts)
