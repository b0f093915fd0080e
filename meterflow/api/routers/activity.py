"""What happened on an account lately, for a room's page: recent readings and rejected
readings of its meters, its alarms, its supply commands with their outcome, and a daily
series of units, money and the balance at each day's end (local days of the account's
site, docs/operations.md#report-time-zones). Also the alarm list of every account in the
caller's scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from contracts.topics import COMMANDS
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check
from meterflow.api.routers.common import PathId, QueryId, out, rows, yuan, yuan_of
from meterflow.api.routers.finance import Format, export
from meterflow.api.scope import in_scope_sql

router = APIRouter(tags=["monitor"])
READ = Depends(require("read"))
Recent = Annotated[int, Query(ge=1, le=500, description="Newest rows of each list")]
Days = Annotated[int, Query(ge=1, le=366, description="Days of the daily series, up to today")]

SERIES_SQL = """
WITH z AS (SELECT COALESCE((SELECT report_zone FROM account_places WHERE account_id = %(a)s),
                           default_report_zone()) AS zone),
days AS (
    SELECT d::date AS day FROM z, generate_series(
        (now() AT TIME ZONE z.zone)::date - (%(days)s - 1), (now() AT TIME ZONE z.zone)::date,
        interval '1 day') d)
SELECT days.day,
       COALESCE((SELECT sum(u.units) FROM usage_daily u JOIN meters m USING (meter_id)
                 WHERE m.account_id = %(a)s AND u.bucket = days.day), 0) AS units,
       COALESCE((SELECT sum(u.amount_yuan) FROM usage_daily u JOIN meters m USING (meter_id)
                 WHERE m.account_id = %(a)s AND u.bucket = days.day), 0) AS amount_yuan,
       (SELECT l.balance_fen FROM ledger l, z WHERE l.account_id = %(a)s
          AND l.at < ((days.day + 1)::timestamp AT TIME ZONE z.zone)
        ORDER BY l.at DESC, l.seq DESC LIMIT 1) AS balance_fen
FROM days ORDER BY days.day
"""


# The account's supply commands, the wallet's and operators', each with its newest
# acknowledgement: pending (operator's, not yet in Kafka), sent, applied, failed, expired.
COMMANDS_SQL = """
SELECT c.command_id, c.meter_id, c.action, c.issued_at, c.deadline, c.reason, c.origin,
       COALESCE(ack.status, CASE WHEN c.origin = 'wallet' OR o.published_at IS NOT NULL
                                 THEN 'sent' ELSE 'pending' END) AS status,
       ack.at AS acked_at, ack.detail AS ack_detail
FROM (SELECT command_id, meter_id, action, issued_at, deadline, reason, 'wallet' AS origin
      FROM commands WHERE account_id = %(a)s
        AND command_id NOT IN (SELECT command_id FROM operator_commands
                               WHERE account_id = %(a)s)
      UNION ALL
      SELECT command_id, meter_id, action, issued_at, deadline, reason, 'operator'
      FROM operator_commands WHERE account_id = %(a)s) c
LEFT JOIN LATERAL (SELECT published_at FROM outbox WHERE topic = %(topic)s
                   AND key = c.meter_id AND payload->>'command_id' = c.command_id
                   LIMIT 1) o ON c.origin = 'operator'
LEFT JOIN LATERAL (SELECT status, at, detail FROM command_acks a
                   WHERE a.command_id = c.command_id ORDER BY a.at DESC LIMIT 1) ack ON true
ORDER BY c.issued_at DESC LIMIT %(n)s
"""


# Today's and this month's units and money of the account's meters, local days of its site.
TOTALS_SQL = """
WITH z AS (SELECT COALESCE((SELECT report_zone FROM account_places WHERE account_id = %(a)s),
                           default_report_zone()) AS zone),
d AS (SELECT (now() AT TIME ZONE z.zone)::date AS today FROM z)
SELECT COALESCE(sum(u.units) FILTER (WHERE u.bucket = d.today), 0) AS today_units,
       COALESCE(sum(u.amount_yuan) FILTER (WHERE u.bucket = d.today), 0) AS today_yuan,
       COALESCE(sum(u.units), 0) AS month_units, COALESCE(sum(u.amount_yuan), 0) AS month_yuan
FROM d LEFT JOIN (usage_daily u JOIN meters m USING (meter_id))
  ON m.account_id = %(a)s AND u.bucket >= date_trunc('month', d.today)::date
     AND u.bucket <= d.today
GROUP BY d.today
"""


@router.get("/accounts/{account_id}/activity")
def activity(account_id: PathId, ctx: Ctx = READ, recent: Recent = 20,
             days: Days = 30) -> dict[str, Any]:
    """Recent readings, rejections, alarms and commands; ``today`` and ``month``: units and
    money (yuan) so far; ``series``: per local day the units, money
    (``amount``, yuan) and the balance at the day's end (``balance``, null before the
    first ledger entry)."""
    check(ctx.conn, ctx.actor, "account", account_id)
    if not rows(ctx.conn, "SELECT 1 FROM accounts WHERE account_id = %s", (account_id,)):
        raise ApiError(404, "account_id", f"no account {account_id!r}")
    params = {"a": account_id, "n": recent, "days": days, "topic": COMMANDS}
    readings = rows(ctx.conn, """
        SELECT r.meter_id, r.ts, r.value, r.unit, r.source, r.received_at FROM meters m
        CROSS JOIN LATERAL (SELECT * FROM readings r WHERE r.meter_id = m.meter_id
                            ORDER BY r.ts DESC LIMIT %(n)s) r
        WHERE m.account_id = %(a)s ORDER BY r.ts DESC LIMIT %(n)s""", params)
    rejected = rows(ctx.conn, """
        SELECT r.meter_id, r.ts, r.reason, r.value, r.received_at FROM meters m
        CROSS JOIN LATERAL (SELECT * FROM rejected_readings r WHERE r.meter_id = m.meter_id
                            ORDER BY r.ts DESC LIMIT %(n)s) r
        WHERE m.account_id = %(a)s ORDER BY r.ts DESC LIMIT %(n)s""", params)
    alarms = rows(ctx.conn, "SELECT alarm_id, at, kind, level, balance_fen, threshold_fen, "
                            "detail FROM alarms WHERE account_id = %(a)s "
                            "ORDER BY at DESC LIMIT %(n)s", params)
    commands = rows(ctx.conn, COMMANDS_SQL, params)
    series = rows(ctx.conn, SERIES_SQL, params)
    totals = rows(ctx.conn, TOTALS_SQL, params)[0]
    return {
        "account_id": account_id,
        "readings": out(readings),
        "rejections": out(rejected),
        "alarms": [{**out(a), "balance": yuan(a["balance_fen"])} for a in alarms],
        "commands": out(commands),
        "today": {"units": out(totals["today_units"]), "amount": yuan_of(totals["today_yuan"])},
        "month": {"units": out(totals["month_units"]), "amount": yuan_of(totals["month_yuan"])},
        "series": [{"day": s["day"].isoformat(), "units": out(s["units"]),
                    "amount": yuan_of(s["amount_yuan"]), "balance_fen": s["balance_fen"],
                    "balance": yuan(s["balance_fen"])} for s in series],
    }


@router.get("/alarms", response_model=None)
def alarms(ctx: Ctx = READ, account_id: QueryId = None, kind: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           format: Format = "json") -> dict[str, Any] | Response:
    """Alarms (low balance levels, cuts, refusals, notification failures), newest first;
    ``format=csv`` or ``xlsx`` for a file."""
    check(ctx.conn, ctx.actor, "account", account_id)
    found = rows(ctx.conn, f"""
        SELECT alarm_id, at, account_id, kind, level, balance_fen, threshold_fen, detail
        FROM alarms WHERE (%(a)s::text IS NULL OR account_id = %(a)s)
          AND (%(k)s::text IS NULL OR kind = %(k)s)
          AND {in_scope_sql("account", "account_id")}
        ORDER BY at DESC LIMIT %(limit)s""",
        {"a": account_id, "k": kind, "limit": limit, **ctx.actor.scope.params()})
    items = [{**out(a), "balance": yuan(a["balance_fen"]),
              "threshold": yuan(a["threshold_fen"])} for a in found]
    if format != "json":
        return export(items, ["at", "alarm_id", "account_id", "kind", "level", "balance",
                              "threshold", "detail"], format, "alarms")
    return {"items": items}
