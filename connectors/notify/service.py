"""The notifier's two loops: Kafka -> notifications table, and table -> gateways.

Intake (one thread): poll ``meterflow.alarms`` and ``meterflow.meter.events``; for each
record parse it, find its account, customer and site, match the rules, render and compose
every message, and insert the notifications as pending (``ON CONFLICT DO NOTHING`` on the
deterministic id) in one transaction per batch. Only after that commit, and after every
dead letter of the batch was acknowledged by Kafka, are the batch's offsets committed: a
crash re-reads the batch and adds nothing twice. A record that cannot be read, or whose
template fails for a recipient, goes to ``meterflow.deadletter`` (stage ``notifier``) with
its raw bytes; the other recipients of that event still get theirs.

Delivery (one thread and a pool): claim due rows, ask the policy (quiet hours, rate limit,
urgency), send through the channel adapter, record the attempt and the new state; one
recipient's messages go in intake order, one at a time. A notification that fails for
good carries its ``notification_failed`` meta-alarm in the same transaction; the loop then
publishes it to ``meterflow.alarms`` and marks it published (again after a crash: the
alarm id is deterministic).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import psycopg

from connectors.notify import store
from connectors.notify.channels import Channel, Message, Result
from connectors.notify.config import AliyunSms, NotifyConfig, WebhookSms
from connectors.notify.email import SmtpEmail
from connectors.notify.ids import meta_alarm_id, notification_id
from connectors.notify.model import META_KIND, Event, parse
from connectors.notify.policy import (
    Delivered,
    Failed,
    Hold,
    Outcome,
    QuietHours,
    Retry,
    after_attempt,
    gate,
    raises_meta_alarm,
)
from connectors.notify.rules import match
from connectors.notify.sms import AliyunRpc
from connectors.notify.sms import AliyunSms as AliyunSmsChannel
from connectors.notify.sms import WebhookSms as WebhookSmsChannel
from connectors.notify.templates import TemplateError
from connectors.notify.voice import AliyunVoice
from connectors.notify.webhook import Webhook
from connectors.notify.wechat import Wechat
from contracts.clock import Clock, utc_now
from contracts.dead_letter import DeadLetter
from contracts.errors import PayloadError
from contracts.messages import AlarmMessage, as_dict, encode
from contracts.topics import ALARMS, METER_EVENTS
from runtime.consumer import Record, assign_from_committed, topic_partitions
from runtime.retry import Doubling

log = logging.getLogger(__name__)
STAGE = "notifier"
GROUP = "meterflow-notifier"
TOPICS = (ALARMS, METER_EVENTS)
ConnFactory = Callable[[], psycopg.Connection]


def build_channels(config: NotifyConfig, secrets: dict[str, str], clock: Clock = utc_now,
                   client: httpx.Client | None = None) -> dict[str, Channel]:
    """One adapter per configured channel; secrets by their variable names."""
    http = client or httpx.Client(follow_redirects=False)
    ch = config.channels
    out: dict[str, Channel] = {}
    if isinstance(ch.sms, AliyunSms):
        rpc = AliyunRpc(ch.sms.endpoint, ch.sms.access_key_id,
                        secrets[ch.sms.access_key_secret_env], ch.sms.region_id, http, clock)
        out["sms"] = AliyunSmsChannel(rpc, ch.sms.sign_name, dict(ch.sms.templates))
    elif isinstance(ch.sms, WebhookSms):
        out["sms"] = WebhookSmsChannel(ch.sms.url, secrets[ch.sms.secret_env], http, clock)
    if ch.voice is not None:
        rpc = AliyunRpc(ch.voice.endpoint, ch.voice.access_key_id,
                        secrets[ch.voice.access_key_secret_env], ch.voice.region_id, http,
                        clock)
        out["voice"] = AliyunVoice(rpc, ch.voice.called_show_number, dict(ch.voice.templates))
    if ch.email is not None:
        e = ch.email
        out["email"] = SmtpEmail(e.host, e.port, e.security, e.sender, e.username,
                                 secrets.get(e.password_env, "") if e.password_env else "",
                                 e.ca_file, clock)
    if ch.wechat is not None:
        out["wechat"] = Wechat(ch.wechat.base_url, ch.wechat.app_id,
                               secrets[ch.wechat.app_secret_env], dict(ch.wechat.templates),
                               http, clock)
    if ch.webhook:
        out["webhook"] = Webhook({name: (e.url, secrets[e.secret_env])
                                  for name, e in ch.webhook.items()}, http, clock)
    return out


# -- intake --------------------------------------------------------------------------------

@dataclass
class Counters:
    records: int = 0
    notifications: int = 0
    dead_letters: int = 0
    stale: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0
    meta_alarms: int = 0
    errors: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


def mask(recipient: str) -> str:
    """A recipient as shown in a meta-alarm: enough to recognise, not to reuse."""
    if "@" in recipient:
        local, _, domain = recipient.partition("@")
        return f"{local[:1]}***@{domain}"
    if recipient.lstrip("+").isdigit() and len(recipient) > 7:
        return f"{recipient[:3]}****{recipient[-4:]}"
    return recipient


class Intake:
    """Records in, pending notifications and dead letters out (no Kafka I/O here)."""

    def __init__(self, config: NotifyConfig, channels: dict[str, Channel],
                 clock: Clock = utc_now, counters: Counters | None = None) -> None:
        self.config = config
        self.channels = channels
        self.clock = clock
        self.texts = config.texts()
        self.urgent = frozenset(config.urgent)
        self.counters = counters or Counters()

    def notifications(self, conn: psycopg.Connection, event: Event
                      ) -> tuple[list[store.NewNotification], list[str]]:
        """The notifications of one event, and what could not be rendered (with why)."""
        context = store.load_context(conn, event)
        rules = store.load_rules(conn, context.account_id, context.site_id)
        matched = match(event, context, rules, default_language=self.config.defaults.language,
                        default_timezone=self.config.defaults.timezone)
        for reason in matched.skipped:
            log.warning("event %s (%s): %s", event.source_id, event.kind, reason)
        rows: list[store.NewNotification] = []
        problems: list[str] = []
        now = self.clock()
        for target in matched.targets:
            nid = notification_id(event.source_id, target.channel, target.recipient)
            try:
                rendered = self.texts.message(event, context, target.language, target.timezone)
                message = {**rendered, "event": event.to_dict()}
                channel = self.channels.get(target.channel)
                payload = None if channel is None else channel.compose(
                    Message.from_stored(nid, event.kind, target.language, message),
                    target.recipient)
            except TemplateError as exc:
                problems.append(f"rule {target.rule_id} ({target.channel}): {exc}")
                continue
            rows.append(store.NewNotification(
                notification_id=nid, created_at=event.at, source_id=event.source_id,
                event_kind=event.kind, level=event.level, urgent=event.kind in self.urgent,
                account_id=context.account_id, meter_id=event.meter_id,
                site_id=context.site_id, channel=target.channel, recipient=target.recipient,
                language=target.language, rule_id=target.rule_id, timezone=target.timezone,
                quiet_hours=target.quiet_hours, message=message, payload=payload,
                next_attempt_at=now))
        return rows, problems

    def _letter(self, record: Record, reason: str) -> DeadLetter:
        log.warning("dead letter %s:%s:%s: %s", record.topic, record.partition, record.offset,
                    reason)
        return DeadLetter.from_kafka(
            stage=STAGE, reason=reason, topic=record.topic, partition=record.partition,
            offset=record.offset, timestamp_s=record.timestamp_ms / 1000, key=record.key,
            raw=record.value)

    def process(self, conn: psycopg.Connection, records: list[Record]) -> list[DeadLetter]:
        """Store the notifications of ``records`` in one transaction; return dead letters."""
        letters: list[DeadLetter] = []
        added = stale = 0
        max_age = timedelta(seconds=self.config.delivery.max_event_age_s)
        with conn.transaction():
            for record in records:
                try:
                    event = parse(record.topic, record.value)
                except PayloadError as exc:
                    letters.append(self._letter(record, exc.reason))
                    continue
                if self.clock() - event.at > max_age:
                    log.info("event %s (%s at %s) is older than %ss: not announced",
                             event.source_id, event.kind, event.at.isoformat(),
                             self.config.delivery.max_event_age_s)
                    stale += 1
                    continue
                try:
                    with conn.transaction():  # a savepoint: one bad record spoils no other
                        rows, problems = self.notifications(conn, event)
                        store.insert_notifications(conn, rows)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise  # the database, not the record: the batch is read again
                except Exception as exc:  # odd data in one record must not stall the rest
                    log.exception("record %s:%s:%s not processed", record.topic,
                                  record.partition, record.offset)
                    letters.append(self._letter(record, f"cannot process: "
                                                        f"{type(exc).__name__}: {exc}"))
                    continue
                added += len(rows)
                if problems:
                    letters.append(self._letter(record, "; ".join(problems)))
        self.counters.add(records=len(records), notifications=added,
                          dead_letters=len(letters), stale=stale)
        return letters


class KafkaFeed:
    """Both topics, every partition, one consumer; offsets committed by the caller."""

    def __init__(self, bootstrap: str, group: str = GROUP, start: str = "earliest") -> None:
        from kafka import KafkaConsumer, TopicPartition

        self._tp = TopicPartition
        # The processors write in Kafka transactions: read only what they committed.
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                      enable_auto_commit=False, auto_offset_reset=start,
                                      isolation_level="read_committed")
        self.partitions = assign_from_committed(
            self.consumer, [tp for topic in TOPICS
                            for tp in topic_partitions(self.consumer, topic)],
            from_beginning=start == "earliest")

    def poll(self, timeout_ms: int = 500, max_records: int = 500) -> list[Record]:
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return [Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)
                for records in batches.values() for r in records]

    def commit(self, records: list[Record]) -> None:
        from kafka.structs import OffsetAndMetadata

        ends: dict[Any, int] = {}
        for r in records:
            tp = self._tp(r.topic, r.partition)
            ends[tp] = max(ends.get(tp, 0), r.offset + 1)
        if ends:
            self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in ends.items()})

    def rewind(self, records: list[Record]) -> None:
        """Back to the first record of each partition: the batch will be read again."""
        firsts: dict[Any, int] = {}
        for r in records:
            tp = self._tp(r.topic, r.partition)
            firsts[tp] = min(firsts.get(tp, r.offset), r.offset)
        for tp, offset in firsts.items():
            self.consumer.seek(tp, offset)

    def close(self) -> None:
        self.consumer.close()


# -- delivery ------------------------------------------------------------------------------

class Delivery:
    """Due rows out through the adapters; every attempt recorded."""

    def __init__(self, config: NotifyConfig, channels: dict[str, Channel], connect: ConnFactory,
                 clock: Clock = utc_now, counters: Counters | None = None) -> None:
        self.config = config
        self.channels = channels
        self.connect = connect
        self.clock = clock
        self.policy = config.delivery.retry_policy()
        self.counters = counters or Counters()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(config.delivery.workers, thread_name_prefix="notify")

    def _conn(self) -> psycopg.Connection:
        conn: psycopg.Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._local.conn = self.connect()
        return conn

    def run_once(self) -> int:
        """Claim due notifications and deliver them; the number claimed."""
        d = self.config.delivery
        now = self.clock()
        lease = now + timedelta(seconds=d.attempt_timeout_s * (d.batch_size + 1) + 30)
        due = store.claim_due(self._conn(), now, d.batch_size, lease)
        lanes: dict[tuple[str, str], list[store.Due]] = {}
        for row in due:
            lanes.setdefault((row.channel, row.recipient), []).append(row)
        for future in [self._pool.submit(self._lane, rows) for rows in lanes.values()]:
            future.result()
        return len(due)

    def _lane(self, rows: list[store.Due]) -> None:
        """One recipient over one channel: in order, one at a time."""
        conn = self._conn()
        channel, recipient = rows[0].channel, rows[0].recipient
        limit = self.config.rate_limit(channel)
        sent: list[datetime] = []
        if limit is not None:
            since = self.clock() - timedelta(seconds=limit.per_s)
            sent = store.sent_since(conn, channel, recipient, since)
        for row in rows:
            now = self.clock()
            decision = gate(now, urgent=row.urgent, zone=ZoneInfo(row.timezone), limit=limit,
                            quiet=QuietHours.parse(row.quiet_hours) if row.quiet_hours else None,
                            sent=sent)
            if isinstance(decision, Hold):
                store.record_hold(conn, row, decision.until, decision.reason)
                self.counters.add(held=1)
                log.info("notification %s held: %s", row.notification_id, decision.reason)
                continue
            if self._attempt(conn, row):
                sent.append(self.clock())

    def _send(self, row: store.Due) -> Result:
        channel = self.channels.get(row.channel)
        if channel is None:
            return Result(Outcome.FAILED, f"channel {row.channel} is not configured")
        payload = row.payload
        try:
            if payload is None:  # stored before the channel was configured
                payload = channel.compose(Message.from_stored(
                    row.notification_id, row.event_kind, row.language, row.message),
                    row.recipient)
            return channel.send(row.recipient, payload, row.notification_id,
                                self.config.delivery.attempt_timeout_s)
        except TemplateError as exc:
            return Result(Outcome.FAILED, str(exc))
        except Exception as exc:  # an adapter bug must not stop the loop; retried
            log.exception("channel %s failed on %s", row.channel, row.notification_id)
            return Result(Outcome.RETRY, f"adapter error: {type(exc).__name__}")

    def _attempt(self, conn: psycopg.Connection, row: store.Due) -> bool:
        """One attempt; True when delivered."""
        started = time.monotonic()
        result = self._send(row)
        latency_ms = int((time.monotonic() - started) * 1000)
        at = self.clock()
        attempt = row.attempts + 1
        decision = after_attempt(self.policy, attempt, result.outcome, result.detail, at,
                                 salt=row.notification_id)
        meta: dict[str, Any] | None = None
        last_error = result.detail
        if isinstance(decision, Delivered):
            status, outcome, next_at = "delivered", "delivered", None
            self.counters.add(delivered=1)
        elif isinstance(decision, Retry):
            status, outcome, next_at = "pending", "retry", decision.at
            self.counters.add(retried=1)
        else:
            assert isinstance(decision, Failed)
            status, outcome, next_at = "failed", "failed", None
            last_error = decision.detail
            self.counters.add(failed=1)
            if raises_meta_alarm(row.event_kind):
                meta = meta_alarm(row, decision.detail, at)
            else:
                log.error("notification %s about a meta-alarm failed for good; no further "
                          "alarm is raised: %s", row.notification_id, decision.detail)
        log.info("notification %s (%s %s to %s) attempt %d: %s %s", row.notification_id,
                 row.event_kind, row.channel, mask(row.recipient), attempt, outcome,
                 result.detail)
        store.record_attempt(conn, row, attempt=attempt, at=at, outcome=outcome,
                             latency_ms=latency_ms, detail=result.detail, status=status,
                             next_attempt_at=next_at, meta_alarm=meta, last_error=last_error)
        return status == "delivered"

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def meta_alarm(row: store.Due, detail: str, at: datetime) -> dict[str, Any]:
    """The ``notification_failed`` alarm of a notification that failed for good, as the
    notification row keeps it until it is published."""
    return as_dict(AlarmMessage(
        alarm_id=meta_alarm_id(row.notification_id), account_id=row.account_id or "",
        meter_id=row.meter_id, kind=META_KIND, level=None, threshold_fen=None,
        balance_fen=None, at=at.astimezone(UTC).isoformat(),
        detail=(f"{row.channel} to {mask(row.recipient)} about {row.event_kind} "
                f"{row.source_id}: {detail}")[:500],
        notification_id=row.notification_id))


def publish_meta_alarms(conn: psycopg.Connection, out: Any, clock: Clock = utc_now,
                        timeout_s: float = 30.0) -> int:
    """Unpublished meta-alarms to ``meterflow.alarms``, each confirmed, then marked."""
    done = 0
    for nid, created_at, alarm in store.unpublished_meta_alarms(conn):
        key = (alarm.get("account_id") or nid).encode()
        value = encode(msgspec.convert(alarm, AlarmMessage))
        out.send(ALARMS, key, value).get(timeout_s)
        store.mark_meta_published(conn, nid, created_at, clock())
        done += 1
    return done


# -- the service ---------------------------------------------------------------------------

class Notifier:
    """Both loops in threads, with a health probe; stopped by :meth:`stop`."""

    def __init__(self, config: NotifyConfig, channels: dict[str, Channel], dsn: str,
                 bootstrap: str, out: Any, *, group: str = GROUP, start: str = "earliest",
                 clock: Clock = utc_now) -> None:
        self.config = config
        self.dsn = dsn
        self.bootstrap = bootstrap
        self.out = out
        self.group = group
        self.start_at = start
        self.clock = clock
        self.counters = Counters()
        self.intake = Intake(config, channels, clock, self.counters)
        self.delivery = Delivery(config, channels, self.connect, clock, self.counters)
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._open: dict[str, int] = {}

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)

    def start(self) -> None:
        for name, target in (("notify-intake", self._intake_loop),
                             ("notify-delivery", self._delivery_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _failed(self, where: str, exc: Exception) -> None:
        self.counters.add(errors=1)
        with self.counters.lock:
            self.counters.last_error = f"{where}: {type(exc).__name__}: {exc}"
        log.warning("%s failed, retrying: %s", where, exc)

    def _intake_loop(self) -> None:
        feed: KafkaFeed | None = None
        conn: psycopg.Connection | None = None
        backoff = Doubling()
        while not self.stopping.is_set():
            records: list[Record] = []
            try:
                if feed is None:
                    feed = KafkaFeed(self.bootstrap, self.group, self.start_at)
                if conn is None or conn.closed or conn.broken:
                    conn = self.connect()
                records = feed.poll(timeout_ms=500)
                if not records:
                    continue
                letters = self.intake.process(conn, records)
                for future in [self.out.dead_letter(letter) for letter in letters]:
                    future.get(30)
                feed.commit(records)
                self.wake.set()
                backoff.succeeded()
            except Exception as exc:  # database or Kafka down: read the batch again later
                self._failed("intake", exc)
                if feed is not None and records:
                    try:
                        feed.rewind(records)
                    except Exception:
                        feed.close()
                        feed = None
                self.stopping.wait(backoff.failed())
        if feed is not None:
            feed.close()

    def _delivery_loop(self) -> None:
        conn: psycopg.Connection | None = None
        backoff = Doubling()
        while not self.stopping.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self.connect()
                claimed = self.delivery.run_once()
                self.counters.add(meta_alarms=publish_meta_alarms(conn, self.out, self.clock))
                self._open = store.open_counts(conn)
                backoff.succeeded()
                if claimed == 0:
                    self.wake.wait(self.config.delivery.poll_s)
                    self.wake.clear()
            except Exception as exc:
                self._failed("delivery", exc)
                self.stopping.wait(backoff.failed())
        self.delivery.close()

    def probe(self) -> dict[str, Any]:
        alive = all(t.is_alive() for t in self._threads) and bool(self._threads)
        c = self.counters
        with c.lock:
            body = {"records": c.records, "notifications": c.notifications,
                    "dead_letters": c.dead_letters, "stale": c.stale, "delivered": c.delivered,
                    "retried": c.retried, "failed": c.failed, "held": c.held,
                    "meta_alarms": c.meta_alarms, "errors": c.errors,
                    "last_error": c.last_error, "open": dict(self._open)}
        body["status"] = "ok" if alive else "error"
        return body

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stopping.set()
        self.wake.set()
        for thread in self._threads:
            thread.join(timeout_s)
