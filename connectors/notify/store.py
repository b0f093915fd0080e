"""The notifier's PostgreSQL side: rules, context, notifications, attempts, meta-alarms.

Tables in sql/0005_notifications.sql. Every write is idempotent on the notification's
deterministic id and its event time (``created_at``): a redelivered event inserts nothing.
Deliveries are driven from the table: due rows are claimed with ``FOR UPDATE SKIP LOCKED``
and leased (``next_attempt_at`` moves past the attempt), so two notifiers never send the
same row at once and a crashed one's rows come due again. The times written are the
notifier's clock, never the database's ``now()``, so a test clock governs everything.

:func:`list_notifications` is the query the HTTP API serves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from connectors.notify.model import Event
from connectors.notify.rules import Context, Rule, RuleError
from contracts.ids import derive_id

log = logging.getLogger(__name__)


# -- rules ---------------------------------------------------------------------------------

RULE_COLUMNS = ("rule_id, scope, scope_id, events, levels, channel, recipient, language, "
                "timezone, quiet_hours, enabled")


def default_rule_id(rule_fields: dict[str, Any]) -> str:
    """A rule id from what the rule says, so adding the same rule twice adds it once."""
    parts = [rule_fields["scope"], rule_fields["scope_id"], rule_fields["channel"],
             rule_fields["recipient"], ",".join(sorted(rule_fields["events"]))]
    return "rule-" + derive_id("rule", *parts).rsplit("-", 1)[-1]


def _rule(row: Sequence[Any]) -> Rule:
    return Rule(rule_id=row[0], scope=row[1], scope_id=row[2], events=tuple(row[3]),
                levels=tuple(int(x) for x in row[4]), channel=row[5], recipient=row[6],
                language=row[7], timezone=row[8], quiet_hours=row[9], enabled=row[10])


def add_rule(conn: psycopg.Connection, rule: Rule) -> bool:
    """Store ``rule``; False when the same rule was already there. A different rule under
    the same id is refused (RuleError): remove it first."""
    with conn.transaction():
        inserted = conn.execute(
            f"INSERT INTO notification_rules ({RULE_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (rule_id) DO NOTHING",
            (rule.rule_id, rule.scope, rule.scope_id, list(rule.events), list(rule.levels),
             rule.channel, rule.recipient, rule.language, rule.timezone, rule.quiet_hours,
             rule.enabled)).rowcount
        if inserted:
            return True
        row = conn.execute(f"SELECT {RULE_COLUMNS} FROM notification_rules WHERE rule_id = %s",
                           (rule.rule_id,)).fetchone()
    assert row is not None
    if _rule(row) != rule:
        raise RuleError(f"rule_id {rule.rule_id!r} already names another rule; remove it first")
    return False


def remove_rule(conn: psycopg.Connection, rule_id: str) -> bool:
    with conn.transaction():
        return bool(conn.execute("DELETE FROM notification_rules WHERE rule_id = %s",
                                 (rule_id,)).rowcount)


def list_rules(conn: psycopg.Connection, scope: str | None = None,
               scope_id: str | None = None) -> list[Rule]:
    rows = conn.execute(
        f"SELECT {RULE_COLUMNS} FROM notification_rules "
        "WHERE (%(scope)s::text IS NULL OR scope = %(scope)s) "
        "AND (%(scope_id)s::text IS NULL OR scope_id = %(scope_id)s) "
        "ORDER BY scope, scope_id, rule_id", {"scope": scope, "scope_id": scope_id}).fetchall()
    return [_rule(r) for r in rows]


def load_rules(conn: psycopg.Connection, account_id: str | None, site_id: str | None
               ) -> list[Rule]:
    """Enabled rules of the account and of its site; an unusable stored rule is logged."""
    rows = conn.execute(
        f"SELECT {RULE_COLUMNS} FROM notification_rules WHERE enabled AND "
        "((scope = 'account' AND scope_id = %s) OR (scope = 'site' AND scope_id = %s))",
        (account_id, site_id)).fetchall()
    rules: list[Rule] = []
    for row in rows:
        try:
            rules.append(_rule(row))
        except RuleError as exc:
            log.error("notification rule %s is unusable and skipped: %s", row[0], exc)
    return rules


# -- context -------------------------------------------------------------------------------

CONTEXT = """
SELECT a.account_id, a.name, c.customer_id, c.name, c.phone, c.email, c.wechat_openid,
       c.language, r.room_id, r.name, s.site_id, s.name, s.timezone
FROM (SELECT %(account)s::text AS account_id, %(meter)s::text AS meter_id) k
LEFT JOIN meters m ON m.meter_id = k.meter_id
LEFT JOIN accounts a ON a.account_id = COALESCE(k.account_id, m.account_id)
LEFT JOIN customers c ON c.customer_id = a.customer_id
LEFT JOIN rooms r ON r.room_id = COALESCE(m.room_id, a.room_id)
LEFT JOIN floors f ON f.floor_id = r.floor_id
LEFT JOIN buildings b ON b.building_id = f.building_id
LEFT JOIN sites s ON s.site_id = b.site_id
"""


def load_context(conn: psycopg.Connection, event: Event) -> Context:
    """Account, customer, room and site of an alarm (by account) or meter event (by meter)."""
    row = conn.execute(CONTEXT, {"account": event.account_id, "meter": event.meter_id}
                       ).fetchone()
    assert row is not None
    return Context(
        account_id=row[0] or event.account_id, account_name=row[1] or "",
        meter_id=event.meter_id, customer_id=row[2], customer_name=row[3] or "",
        phone=row[4] or "", email=row[5] or "", wechat_openid=row[6] or "",
        customer_language=row[7], room_id=row[8], room_name=row[9] or "", site_id=row[10],
        site_name=row[11] or "", site_timezone=row[12])


# -- notifications -------------------------------------------------------------------------

@dataclass(frozen=True)
class NewNotification:
    notification_id: str
    created_at: datetime
    source_id: str
    event_kind: str
    level: int | None
    urgent: bool
    account_id: str | None
    meter_id: str | None
    site_id: str | None
    channel: str
    recipient: str
    language: str
    rule_id: str
    timezone: str
    quiet_hours: str | None
    message: dict[str, Any]
    payload: dict[str, Any] | None
    next_attempt_at: datetime


INSERT = """
INSERT INTO notifications (notification_id, created_at, source_id, event_kind, level, urgent,
    account_id, meter_id, site_id, channel, recipient, language, rule_id, timezone,
    quiet_hours, message, payload, next_attempt_at, status, attempts)
VALUES (%(notification_id)s, %(created_at)s, %(source_id)s, %(event_kind)s, %(level)s,
    %(urgent)s, %(account_id)s, %(meter_id)s, %(site_id)s, %(channel)s, %(recipient)s,
    %(language)s, %(rule_id)s, %(timezone)s, %(quiet_hours)s, %(message)s, %(payload)s,
    %(next_attempt_at)s, 'pending', 0)
ON CONFLICT (notification_id, created_at) DO NOTHING
"""


def insert_notifications(conn: psycopg.Connection, rows: Sequence[NewNotification]) -> None:
    """Insert new notifications as pending; ones already stored are left as they are."""
    if not rows:
        return
    params = []
    for row in rows:
        values = asdict(row)
        values["message"] = Jsonb(row.message)
        values["payload"] = None if row.payload is None else Jsonb(row.payload)
        params.append(values)
    with conn.cursor() as cur:
        cur.executemany(INSERT, params)


@dataclass(frozen=True)
class Due:
    """A notification claimed for one delivery attempt."""

    notification_id: str
    created_at: datetime
    source_id: str
    event_kind: str
    urgent: bool
    account_id: str | None
    meter_id: str | None
    channel: str
    recipient: str
    language: str
    attempts: int
    timezone: str
    quiet_hours: str | None
    message: dict[str, Any]
    payload: dict[str, Any] | None
    ordinal: int


CLAIM = """
WITH due AS (
    SELECT notification_id, created_at FROM notifications
    WHERE status IN ('pending', 'held') AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at, ordinal
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
UPDATE notifications n SET next_attempt_at = %(lease)s
FROM due WHERE n.notification_id = due.notification_id AND n.created_at = due.created_at
RETURNING n.notification_id, n.created_at, n.source_id, n.event_kind, n.urgent, n.account_id,
    n.meter_id, n.channel, n.recipient, n.language, n.attempts, n.timezone, n.quiet_hours,
    n.message, n.payload, n.ordinal
"""


def claim_due(conn: psycopg.Connection, now: datetime, limit: int, lease_until: datetime
              ) -> list[Due]:
    """Due notifications, leased until ``lease_until``, in intake order."""
    with conn.transaction():
        rows = conn.execute(CLAIM, {"now": now, "limit": limit, "lease": lease_until}
                            ).fetchall()
    return sorted((Due(*row) for row in rows), key=lambda d: d.ordinal)


def sent_since(conn: psycopg.Connection, channel: str, recipient: str, since: datetime
               ) -> list[datetime]:
    """When messages to this recipient over this channel were delivered after ``since``."""
    rows = conn.execute(
        "SELECT delivered_at FROM notifications WHERE channel = %s AND recipient = %s "
        "AND status = 'delivered' AND delivered_at > %s", (channel, recipient, since)).fetchall()
    return [r[0] for r in rows]


_KEY = "notification_id = %(id)s AND created_at = %(created_at)s"
_OPEN = " AND status IN ('pending', 'held')"


def record_hold(conn: psycopg.Connection, due: Due, until: datetime, reason: str) -> None:
    with conn.transaction():
        conn.execute(f"UPDATE notifications SET status = 'held', next_attempt_at = %(until)s, "
                     f"last_error = %(reason)s WHERE {_KEY}{_OPEN}",
                     {"until": until, "reason": reason, "id": due.notification_id,
                      "created_at": due.created_at})


def record_attempt(conn: psycopg.Connection, due: Due, *, attempt: int, at: datetime,
                   outcome: str, latency_ms: int, detail: str, status: str,
                   next_attempt_at: datetime | None, meta_alarm: dict[str, Any] | None,
                   last_error: str = "") -> bool:
    """One attempt and the state it leaves, with the meta-alarm when it failed for good,
    in one transaction. False when the row was no longer open (another notifier finished
    it after this one's lease ran out): nothing is written then. ``detail`` is what the
    gateway said; ``last_error`` (default: the detail) what the notification shows."""
    key = {"id": due.notification_id, "created_at": due.created_at}
    with conn.transaction():
        updated = conn.execute(
            "UPDATE notifications SET status = %(status)s, attempts = %(attempt)s, "
            "next_attempt_at = %(next)s, delivered_at = %(delivered)s, "
            "last_error = %(error)s, meta_alarm = %(meta)s "
            f"WHERE {_KEY}{_OPEN}",
            {**key, "status": status, "attempt": attempt, "next": next_attempt_at,
             "delivered": at if status == "delivered" else None,
             "error": "" if status == "delivered" else (last_error or detail),
             "meta": None if meta_alarm is None else Jsonb(meta_alarm)}).rowcount
        if not updated:
            return False
        conn.execute(
            "INSERT INTO notification_attempts (notification_id, attempt, at, channel, outcome,"
            " latency_ms, detail) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (due.notification_id, attempt, at, due.channel, outcome, latency_ms, detail))
        if meta_alarm is not None:
            conn.execute(
                "INSERT INTO alarms (alarm_id, at, account_id, kind, level, balance_fen, "
                "detail, threshold_fen) VALUES (%s, %s, %s, %s, NULL, NULL, %s, NULL) "
                "ON CONFLICT (alarm_id, at) DO NOTHING",
                (meta_alarm["alarm_id"], datetime.fromisoformat(meta_alarm["at"]),
                 meta_alarm["account_id"], meta_alarm["kind"], meta_alarm["detail"]))
    return True


def unpublished_meta_alarms(conn: psycopg.Connection, limit: int = 100
                            ) -> list[tuple[str, datetime, dict[str, Any]]]:
    rows = conn.execute(
        "SELECT notification_id, created_at, meta_alarm FROM notifications "
        "WHERE meta_alarm IS NOT NULL AND meta_alarm_published_at IS NULL "
        "ORDER BY ordinal LIMIT %s", (limit,)).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def mark_meta_published(conn: psycopg.Connection, notification_id: str, created_at: datetime,
                        at: datetime) -> None:
    with conn.transaction():
        conn.execute("UPDATE notifications SET meta_alarm_published_at = %(at)s "
                     f"WHERE {_KEY}", {"at": at, "id": notification_id,
                                       "created_at": created_at})


def open_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Notifications not finished yet, by status (``pending``, ``held``)."""
    rows = conn.execute("SELECT status, count(*) FROM notifications "
                        "WHERE status IN ('pending', 'held') GROUP BY status").fetchall()
    return {"pending": 0, "held": 0, **{r[0]: int(r[1]) for r in rows}}


# -- the query the API serves -----------------------------------------------------------------

LIST = """
SELECT notification_id, created_at, source_id, event_kind, level, urgent, account_id,
       meter_id, site_id, channel, recipient, language, status, attempts, next_attempt_at,
       delivered_at, last_error, rule_id, message->>'subject'
FROM notifications
WHERE (%(account)s::text IS NULL OR account_id = %(account)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND {where}
ORDER BY created_at DESC, ordinal DESC
LIMIT %(limit)s
"""
LIST_FIELDS = ("notification_id", "created_at", "source_id", "event_kind", "level", "urgent",
               "account_id", "meter_id", "site_id", "channel", "recipient", "language",
               "status", "attempts", "next_attempt_at", "delivered_at", "last_error",
               "rule_id", "subject")
STATUSES = ("pending", "held", "delivered", "failed")


def _json_safe(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def list_notifications(conn: psycopg.Connection, account_id: str | None = None,
                       status: str | None = None, since: datetime | None = None,
                       limit: int = 100, where: str = "TRUE",
                       params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Newest first: each notification (JSON-safe: times as ISO 8601 text) with
    ``attempts_log``, its attempts in order (``attempt``, ``at``, ``outcome``,
    ``latency_ms``, ``detail``). ``where`` narrows the rows further (the API's scope of
    the caller), with its named ``params``."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status {status!r}: one of {', '.join(STATUSES)}")
    if since is not None and since.tzinfo is None:
        raise ValueError("since: a time with a UTC offset")
    if not 1 <= limit <= 10_000:
        raise ValueError("limit: 1 to 10000")
    rows = conn.execute(LIST.format(where=where), {
        "account": account_id, "status": status, "since": since, "limit": limit,
        **(params or {})}).fetchall()
    out = [{name: _json_safe(value) for name, value in zip(LIST_FIELDS, row, strict=True)}
           for row in rows]
    ids = [n["notification_id"] for n in out]
    attempts: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for nid, attempt, at, outcome, latency, detail in conn.execute(
                "SELECT notification_id, attempt, at, outcome, latency_ms, detail "
                "FROM notification_attempts WHERE notification_id = ANY(%s) "
                "ORDER BY notification_id, attempt, at", (ids,)).fetchall():
            attempts[nid].append({"attempt": attempt, "at": at.isoformat(), "outcome": outcome,
                                  "latency_ms": latency, "detail": detail})
    for n in out:
        n["attempts_log"] = attempts[n["notification_id"]]
    return out
