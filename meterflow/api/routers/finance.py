"""Finance: the order list (top-ups, refunds, adjustments, charges) with filters, income
by day, month, year or an arbitrary span in the site's time zone, and exports.

Amounts are signed (credits to the account positive) and given twice: yuan as exact
decimal text and integer fen. CSV and XLSX exports (pandas, openpyxl) carry the same two
columns as text and integers, never floats. A restricted operator's orders, income and
exports count the accounts of their scope only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from meterflow.api.auth import Ctx, require
from meterflow.api.places import check
from meterflow.api.routers.common import Limit, Offset, QueryId, Zone, out, rows, yuan
from meterflow.api.routers.spans import LABELS, Period, span
from meterflow.api.scope import in_scope_sql
from meterflow.api.types import Day
from meterflow.exports import MEDIA, table_bytes

router = APIRouter(tags=["finance"])
FIN = Depends(require("finance.read"))
Format = Annotated[Literal["json", "csv", "xlsx"], Query(description="json, csv or xlsx")]
From = Annotated[Day | None, Query(alias="from", description="First local day (YYYY-MM-DD)")]
To = Annotated[Day | None, Query(alias="to", description="Last local day, inclusive")]
TzQ = Annotated[Zone, Query(description="IANA zone of local days")]
Kind = Literal["topup", "refund", "adjustment", "charge"]
OperatorQ = Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$")]

SCOPED = in_scope_sql("account", "account_id")
ORDERS = """
SELECT * FROM (
    SELECT p.payment_id AS order_id, p.kind, p.account_id,
           CASE WHEN p.kind = 'refund' THEN -p.amount_fen ELSE p.amount_fen END AS amount_fen,
           p.operator, p.note, NULL::text AS meter_id, p.created_at AS at
    FROM payments p
    WHERE p.created_at >= %(begin)s AND p.created_at < %(stop)s
    UNION ALL
    SELECT l.entry_id, 'charge', l.account_id, l.amount_fen, '', l.detail, l.meter_id, l.at
    FROM ledger l
    WHERE l.kind = 'charge' AND l.at >= %(begin)s AND l.at < %(stop)s
) o
WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)
  AND (%(account)s::text IS NULL OR account_id = %(account)s)
  AND (%(operator)s::text IS NULL OR operator = %(operator)s)
  AND """ + SCOPED + """
ORDER BY at DESC, order_id
LIMIT %(limit)s OFFSET %(offset)s
"""


def export(items: list[dict[str, Any]], columns: list[str], fmt: str, name: str) -> Response:
    """CSV or XLSX of rows whose money columns are already text or integer fen."""
    return Response(table_bytes(items, columns, fmt, name), media_type=MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


@router.get("/finance/orders", response_model=None)
def orders(ctx: Ctx = FIN, kind: Kind | None = None, account_id: QueryId = None,
           operator: OperatorQ = None, start: From = None, end: To = None,
           tz: TzQ = "Asia/Shanghai", format: Format = "json", limit: Limit = 1000,
           offset: Offset = 0) -> dict[str, Any] | Response:
    """Orders, newest first: payments by when they were recorded, charges by interval end."""
    _, _, begin, stop = span(start, end, tz)
    check(ctx.conn, ctx.actor, "account", account_id)
    found = rows(ctx.conn, ORDERS, {"begin": begin, "stop": stop, "kind": kind,
                                    "account": account_id, "operator": operator,
                                    "limit": limit, "offset": offset,
                                    **ctx.actor.scope.params()})
    items = [{**out(r), "amount": yuan(r["amount_fen"]), "amount_fen": int(r["amount_fen"])}
             for r in found]
    if format != "json":
        columns = ["at", "order_id", "kind", "account_id", "meter_id", "amount", "amount_fen",
                   "operator", "note"]
        return export(items, columns, format, "orders")
    return {"items": items, "limit": limit, "offset": offset}


INCOME = """
WITH pay AS (
    SELECT {bucket_p} AS bucket,
           sum(amount_fen) FILTER (WHERE kind = 'topup') AS topups_fen,
           sum(amount_fen) FILTER (WHERE kind = 'refund') AS refunds_fen,
           sum(amount_fen) FILTER (WHERE kind = 'adjustment') AS adjustments_fen,
           count(*) AS payments
    FROM payments WHERE created_at >= %(begin)s AND created_at < %(stop)s
      AND (%(account)s::text IS NULL OR account_id = %(account)s) AND {scoped}
    GROUP BY 1),
chg AS (
    SELECT {bucket_l} AS bucket, -sum(amount_fen) AS charges_fen
    FROM ledger WHERE kind = 'charge' AND at >= %(begin)s AND at < %(stop)s
      AND (%(account)s::text IS NULL OR account_id = %(account)s) AND {scoped}
    GROUP BY 1)
SELECT bucket, coalesce(topups_fen, 0) AS topups_fen, coalesce(refunds_fen, 0) AS refunds_fen,
       coalesce(adjustments_fen, 0) AS adjustments_fen, coalesce(payments, 0) AS payments,
       coalesce(charges_fen, 0) AS charges_fen
FROM pay FULL JOIN chg USING (bucket) ORDER BY bucket
"""


@router.get("/finance/income", response_model=None)
def income(ctx: Ctx = FIN, period: Period = "day", start: From = None, end: To = None,
           tz: TzQ = "Asia/Shanghai", account_id: QueryId = None,
           format: Format = "json") -> dict[str, Any] | Response:
    """Income per local day, month or year (or one row for the whole span): top-ups,
    refunds, adjustments, net received (top-ups - refunds + adjustments) and charges."""
    first, last, begin, stop = span(start, end, tz)
    check(ctx.conn, ctx.actor, "account", account_id)

    def bucket(column: str) -> str:
        if period == "span":
            return f"'{first}..{last}'::text"
        return f"to_char({column} AT TIME ZONE %(tz)s, '{LABELS[period]}')"

    query = INCOME.format(bucket_p=bucket("created_at"), bucket_l=bucket("at"), scoped=SCOPED)
    found = rows(ctx.conn, query, {"begin": begin, "stop": stop, "tz": tz,
                                   "account": account_id, **ctx.actor.scope.params()})
    items = []
    totals = {"topups_fen": 0, "refunds_fen": 0, "adjustments_fen": 0, "net_fen": 0,
              "charges_fen": 0}
    for row in found:
        fen = {k: int(row[k]) for k in ("topups_fen", "refunds_fen", "adjustments_fen",
                                        "charges_fen")}
        fen["net_fen"] = fen["topups_fen"] - fen["refunds_fen"] + fen["adjustments_fen"]
        for key, value in fen.items():
            totals[key] += value
        items.append({"bucket": row["bucket"], "payments": int(row["payments"]), **fen,
                      **{k.removesuffix("_fen"): yuan(v) for k, v in fen.items()}})
    if format != "json":
        columns = ["bucket", "payments", "topups", "topups_fen", "refunds", "refunds_fen",
                   "adjustments", "adjustments_fen", "net", "net_fen", "charges",
                   "charges_fen"]
        return export(items, columns, format, f"income-{period}")
    return {"period": period, "from": str(first), "to": str(last), "timezone": tz,
            "items": items,
            "totals": {**totals, **{k.removesuffix("_fen"): yuan(v) for k, v in totals.items()}}}
