"""The apportionment run: a group's master consumption in a period, rated and split.

The master's units and rated money come from its ``rated_lines`` (rated with its own
tariff by the meter stage); an interval belongs to the period its end falls in, ``(start,
end]`` in the site's local days (a day's last interval ends at midnight). Optionally the
sub-accounts' own units of the same commodity are taken off first (master minus
sub-meters). The split, its inputs and each share's arithmetic are stored
(``apportion_runs``, ``apportion_shares``) in the transaction that records the shares as
deductions (services/property/postings.py); a period split before is never split again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from contracts.money import fraction_text, round_fen
from pipeline.billing.apportion import (
    ApportionError,
    Member,
    common_cost,
    common_units,
    split,
)
from pipeline.billing.charges import Period, closed_periods
from services.property.postings import DeductionSpec, record_deduction

GROUP = "SELECT g.*, site_report_zone(g.site_id) AS zone FROM apportion_groups g " \
        "WHERE g.group_id = %s"
MASTER = """
SELECT coalesce(sum(l.units), 0), coalesce(sum(l.amount_yuan), 0)
FROM rated_lines l WHERE l.meter_id = %s AND l.end_ts > %s AND l.end_ts <= %s
"""
MEMBERS = """
SELECT m.account_id, m.ratio, m.vacant, r.area_m2,
       coalesce((SELECT sum(l.units) FROM rated_lines l JOIN meters mt ON mt.meter_id = l.meter_id
                 WHERE mt.account_id = m.account_id AND mt.commodity = %(commodity)s
                   AND l.meter_id <> %(master)s
                   AND l.end_ts > %(t0)s AND l.end_ts <= %(t1)s), 0) AS units
FROM apportion_members m
JOIN accounts a ON a.account_id = m.account_id
LEFT JOIN rooms r ON r.room_id = a.room_id
WHERE m.group_id = %(group)s ORDER BY m.account_id
"""


@dataclass(frozen=True, slots=True)
class RunResult:
    group_id: str
    period: str
    total_fen: int
    shares: int
    new: bool


def bounds(period: Period, zone: str) -> tuple[datetime, datetime]:
    """The period's local days as instants."""
    tz = ZoneInfo(zone)
    return (datetime.combine(period.start, time(0), tz).astimezone(UTC),
            datetime.combine(period.end, time(0), tz).astimezone(UTC))


def _weight(method: str, row: dict[str, object]) -> Decimal:
    if method == "area":
        if row["area_m2"] is None:
            raise ApportionError(f"area_m2: the room of account {row['account_id']} has no "
                                 "area; set it on the room")
        return Decimal(str(row["area_m2"]))
    if method == "usage":
        return Decimal(str(row["units"]))
    return Decimal(str(row["ratio"]))


def run_period(conn: psycopg.Connection, group_id: str, period: Period,
               now: datetime | None = None) -> RunResult:
    """Split one period of one group (once); ApportionError names what is missing."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        group = cur.execute(GROUP, (group_id,)).fetchone()
        if group is None:
            raise ApportionError(f"group_id: no apportionment group {group_id!r}")
        done = cur.execute("SELECT total_fen FROM apportion_runs WHERE group_id = %s AND "
                           "period = %s", (group_id, period.label)).fetchone()
        if done is not None:
            count = conn.execute("SELECT count(*) FROM apportion_shares WHERE group_id = %s "
                                 "AND period = %s", (group_id, period.label)).fetchone()
            return RunResult(group_id, period.label, int(done["total_fen"]),
                             int(count[0]) if count else 0, False)
        master = str(group["master_meter_id"])
        commodity_row = conn.execute("SELECT commodity FROM meters WHERE meter_id = %s",
                                     (master,)).fetchone()
        commodity = str(commodity_row[0]) if commodity_row else "electricity"
        t0, t1 = bounds(period, str(group["zone"]))
        row = conn.execute(MASTER, (master, t0, t1)).fetchone()
        master_units, master_yuan = (Decimal(0), Decimal(0)) if row is None else (
            Decimal(row[0]), Decimal(row[1]))
        found = cur.execute(MEMBERS, {"commodity": commodity, "master": master, "t0": t0,
                                      "t1": t1, "group": group_id}).fetchall()
        method = str(group["method"])
        members = [Member(str(r["account_id"]), _weight(method, r), bool(r["vacant"]))
                   for r in found]
        sub_units = sum((Decimal(r["units"]) for r in found), Decimal(0))
        units = common_units(master_units, sub_units, bool(group["minus_submeters"]))
        cost = common_cost(master_yuan, master_units, units)
        total = round_fen(cost)
        shares = split(total, method, members, bool(group["include_vacant"]))
        weight_sum = sum((s.weight for s in shares), Decimal(0)) if method != "equal" \
            else Decimal(len(shares))
        inserted = conn.execute(
            "INSERT INTO apportion_runs (group_id, period, period_start, period_end, method, "
            "minus_submeters, master_units, sub_units, common_units, master_yuan, common_yuan, "
            "total_fen, weight_sum) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING group_id",
            (group_id, period.label, period.start, period.end, method,
             bool(group["minus_submeters"]), master_units, sub_units, units, master_yuan,
             fraction_text(cost), total, weight_sum)).fetchone()
        if inserted is None:  # another process split it a moment ago
            return RunResult(group_id, period.label, total, len(shares), False)
        for share in shares:
            shown_weight = Decimal(1) if method == "equal" else share.weight
            conn.execute(
                "INSERT INTO apportion_shares (group_id, period, account_id, weight, quota, "
                "amount_fen, arithmetic) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (group_id, period.label, share.account_id, shown_weight,
                 fraction_text(share.quota), share.amount_fen,
                 share.arithmetic(total, weight_sum)))
            if share.amount_fen > 0:
                record_deduction(conn, DeductionSpec(
                    "apportionment", group_id, share.account_id, period.label, period.start,
                    period.end, share.amount_fen, bool(group["may_cut"]),
                    f"{group['name'] or group_id} {period.label}: {units} of {master_units} "
                    f"units by {method}"), now)
    return RunResult(group_id, period.label, total, len(shares), True)


def month(label: str) -> Period:
    """The monthly period ``YYYY-MM``; ValueError naming the field otherwise."""
    try:
        year, number = (int(part) for part in label.split("-"))
        start = date(year, number, 1)
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    except ValueError:
        raise ValueError(f"period: {label!r} is not a month as YYYY-MM") from None
    return Period(label, start, end, end)


def run_due(conn: psycopg.Connection, now: datetime) -> tuple[list[RunResult], list[str]]:
    """Every closed period of every active group not split yet; a group that cannot be
    split (a room without area) is reported and the others go on."""
    results, problems = [], []
    groups = conn.execute("SELECT group_id, start_date, day, site_report_zone(site_id) "
                          "FROM apportion_groups WHERE active ORDER BY group_id").fetchall()
    for group_id, start, day, zone in groups:
        today = now.astimezone(ZoneInfo(str(zone))).date()
        for period in closed_periods(start, int(day), today):
            try:
                results.append(run_period(conn, str(group_id), period, now))
            except ApportionError as exc:
                problems.append(f"{group_id} {period.label}: {exc}")
                break
    return results, problems
