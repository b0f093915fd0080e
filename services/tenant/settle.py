"""The settle service (``meterflow pay settle``): orders whose notification has not come
are asked of their gateway, and refunds not yet finished are sent or asked again
(docs/tenant.md, settle service).

Safe with several instances: each round claims due rows by moving their ``query_at`` a
lease ahead inside ``FOR UPDATE SKIP LOCKED``, so two instances never ask about the same row
at once; and whatever they do is idempotent (the payment's key is the order or refund
number). An order that is still unpaid when it expires is closed at the gateway, then here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from connectors.gateways.clients import Gateway
from connectors.gateways.model import PAID, GatewayError, GatewayRefusal
from runtime.health import Heartbeat
from services.tenant.orders import OrderRefused, apply_trade, close_order
from services.tenant.refunds import finish_refund, load_refund, send_refund

log = logging.getLogger("meterflow.settle")

CLAIM_ORDERS = """
UPDATE payment_orders o SET query_at = %(at)s + %(lease)s * power(2, least(o.queries, 6)),
       queries = o.queries + 1
WHERE o.order_no IN (SELECT order_no FROM payment_orders WHERE state = 'created'
                     AND query_at <= %(at)s ORDER BY query_at LIMIT %(n)s
                     FOR UPDATE SKIP LOCKED)
RETURNING o.order_no, o.gateway, o.expires_at
"""
CLAIM_REFUNDS = """
UPDATE payment_refunds r SET query_at = %(at)s + %(lease)s
WHERE r.refund_no IN (SELECT refund_no FROM payment_refunds
                      WHERE state IN ('requested', 'processing') AND query_at <= %(at)s
                      ORDER BY query_at LIMIT %(n)s FOR UPDATE SKIP LOCKED)
RETURNING r.refund_no, r.state
"""


@dataclass(frozen=True, slots=True)
class SettleConfig:
    period_s: float = 10.0
    batch: int = 50
    lease_s: float = 30.0


def settle_round(conn: psycopg.Connection, gateways: Mapping[str, Gateway],
                 config: SettleConfig, now: datetime | None = None) -> dict[str, int]:
    """One round over due orders and refunds; counts of what happened."""
    at = now or datetime.now(UTC)
    params = {"at": at, "lease": timedelta(seconds=config.lease_s), "n": config.batch}
    counts = {"applied": 0, "closed": 0, "waiting": 0, "refunds": 0, "errors": 0}
    for order_no, name, expires_at in conn.execute(CLAIM_ORDERS, params).fetchall():
        gateway = gateways.get(name)
        if gateway is None:
            continue
        try:
            trade = gateway.query(order_no)
            if trade is not None and trade.state == PAID:
                apply_trade(conn, trade, "query")
                counts["applied"] += 1
            elif at >= expires_at:
                gateway.close(order_no)
                counts["closed"] += close_order(conn, order_no)
            else:
                counts["waiting"] += 1
        except (GatewayError, GatewayRefusal, OrderRefused) as exc:
            counts["errors"] += 1
            log.warning("order %s: %s", order_no, exc)
    for refund_no, state in conn.execute(CLAIM_REFUNDS, params).fetchall():
        refund = load_refund(conn, refund_no)
        gateway = gateways.get(refund.gateway) if refund else None
        if refund is None or gateway is None:
            continue
        try:
            if state == "requested":
                send_refund(conn, gateway, refund)
            else:
                finish_refund(conn, refund, gateway.query_refund(refund.order_no, refund_no))
            counts["refunds"] += 1
        except GatewayError as exc:
            counts["errors"] += 1
            log.warning("refund %s: %s", refund_no, exc)
    return counts


class Settler:
    """The loop: a round every ``period_s``; ``heartbeat`` for the health probe."""

    def __init__(self, connect: Callable[[], psycopg.Connection],
                 gateways: Mapping[str, Gateway], config: SettleConfig) -> None:
        self.connect = connect
        self.gateways = gateways
        self.config = config
        self.stop = threading.Event()
        self.heartbeat = Heartbeat(max(60.0, config.period_s * 6))
        self.totals: dict[str, int] = {}

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self.connect()
                for key, value in settle_round(conn, self.gateways, self.config).items():
                    self.totals[key] = self.totals.get(key, 0) + value
                self.heartbeat.beat()
            except psycopg.Error as exc:
                log.warning("settle round failed: %s", exc)
                self.heartbeat.fail(exc)
                conn = None
            self.stop.wait(self.config.period_s)
        if conn is not None:
            conn.close()

    def probe(self) -> dict[str, Any]:
        return {**self.heartbeat.report(), "totals": dict(self.totals),
                "gateways": sorted(self.gateways)}
