"""The custom-charge run: every period due by now, for every account an item targets.

Days are the item's site's local days (``site_report_zone``, sql/0010_site_time_zones.sql).
Each (item, account, period) becomes one deduction (services/property/postings.py), in a
transaction per account and item; the unique key makes a repeated or restarted run add
nothing, so the run is safe from several processes at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from pipeline.billing.charges import ChargeError, Schedule, amount_fen, periods_due
from services.property.postings import DeductionSpec, record_deduction

log = logging.getLogger("meterflow.charges")

ITEMS = """
SELECT c.*, site_report_zone(c.site_id) AS zone FROM charge_items c
WHERE c.active AND (%(item)s::text IS NULL OR c.item_id = %(item)s) ORDER BY c.item_id
"""
ACCOUNTS = """
SELECT account_id, area_m2 FROM charge_item_accounts WHERE item_id = %s ORDER BY account_id
"""


@dataclass
class ChargeRun:
    """What a run did: deductions recorded, periods already charged, accounts skipped."""

    recorded: int = 0
    already: int = 0
    skipped: list[str] = field(default_factory=list)


def schedule_of(row: dict[str, Any]) -> Schedule:
    """The schedule of a ``charge_items`` row."""
    return Schedule(str(row["frequency"]), row["start_date"], row["end_date"],
                    int(row["day"]), int(row["month"]))


def run_charges(conn: psycopg.Connection, now: datetime, item_id: str | None = None
                ) -> ChargeRun:
    """Record every due period of every active item (or one item) up to ``now``."""
    run = ChargeRun()
    with conn.cursor(row_factory=dict_row) as cur:
        items = cur.execute(ITEMS, {"item": item_id}).fetchall()
    for item in items:
        today = now.astimezone(ZoneInfo(str(item["zone"]))).date()
        periods = periods_due(schedule_of(item), today)
        if not periods:
            continue
        for account_id, area in conn.execute(ACCOUNTS, (item["item_id"],)).fetchall():
            try:
                fen = amount_fen(str(item["basis"]), Decimal(item["amount_yuan"]),
                                 None if area is None else Decimal(area))
            except ChargeError as exc:
                run.skipped.append(f"{item['item_id']}/{account_id}: {exc}")
                continue
            if fen == 0:
                continue
            with conn.transaction():
                for period in periods:
                    spec = DeductionSpec(
                        "charge_item", str(item["item_id"]), str(account_id), period.label,
                        period.start, period.end, fen, bool(item["may_cut"]),
                        f"{item['name']} {period.label}")
                    if record_deduction(conn, spec, now):
                        run.recorded += 1
                    else:
                        run.already += 1
    if run.skipped:
        log.warning("charge run skipped %d account(s): %s", len(run.skipped),
                    "; ".join(run.skipped[:5]))
    return run
