"""The processing agents: validate, rate, wallet, and the timers (online/offline, ticks).

Agents only move records: each calls one pure step of :mod:`pipeline.steps` and sends what
it returns. Money paths run with concurrency 1; every output carries a deterministic id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust

from pipeline import topics
from pipeline.config_source import ConfigTable
from pipeline.dead_letter import DeadLetter
from pipeline.raw_reading import PayloadError, parse_raw_reading
from pipeline.replay import Out, Position, behind, note
from pipeline.steps import (
    charge_step,
    disconnect_due,
    payment_step,
    rate_step,
    silence_step,
    tick_step,
    validate_step,
)

log = logging.getLogger("meterflow.pipeline")
Clock = Callable[[], datetime]
TICKS = topics.WALLET_TICKS


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


class Outputs:
    """The app's output topics, by name."""

    def __init__(self, app: faust.App) -> None:
        self._topics: dict[str, faust.TopicT] = {}
        self.app = app

    def topic(self, name: str) -> faust.TopicT:
        if name not in self._topics:
            self._topics[name] = self.app.topic(name, key_serializer="raw",
                                                value_serializer="raw")
        return self._topics[name]

    async def send(self, outs: list[Out]) -> None:
        for topic, key, value in outs:
            await self.topic(topic).send(key=key.encode(), value=_json(value))


def at(message: Any) -> Position:
    """Where a message was read (pipeline.replay.behind tells replays apart by it)."""
    return message.topic, message.partition, message.offset


def dead_letter(stage: str, reason: str, message: Any) -> tuple[str, str, dict[str, Any]]:
    letter = DeadLetter.from_kafka(
        stage=stage, reason=reason, topic=message.topic, partition=message.partition,
        offset=message.offset, timestamp_s=message.timestamp, key=message.key,
        raw=message.value)
    return topics.DEAD_LETTERS, letter.id, json.loads(letter.to_json())


def _decode(stage: str, message: Any) -> tuple[dict[str, Any] | None, list[Out]]:
    """A JSON object from one of our own topics, or a dead letter naming the problem."""
    try:
        value = json.loads(message.value or b"")
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [dead_letter(stage, f"unreadable: {exc}", message)]
    return value, []


def register(app: faust.App, config: ConfigTable, clock: Clock,
             offline_check_s: float) -> None:
    """Define the processing agents and timers on ``app``."""
    out = Outputs(app)
    raw = app.topic(topics.RAW_READINGS, key_serializer="raw", value_serializer="raw")
    accepted = app.topic(topics.ACCEPTED_READINGS, key_serializer="raw", value_serializer="raw")
    wallet_in = app.topic(topics.RATED_INTERVALS, topics.PAYMENTS, TICKS,
                          key_serializer="raw", value_serializer="raw")
    meters = app.Table("meter-state", default=None)
    tiers = app.Table("tier-state", default=None)
    wallets = app.Table("wallet-state", default=None)
    offline: set[str] = set()

    @app.agent(raw, concurrency=1)
    async def validate(stream: faust.StreamT) -> None:
        await config.ready.wait()
        async for event in stream.events():
            message = event.message
            try:
                reading = parse_raw_reading(message.value)
            except PayloadError as exc:
                await out.send([dead_letter("validate", exc.reason, message)])
                continue
            if message.key != reading.meter_id.encode():
                # Per-meter state lives in the key's partition: a wrong key would split it.
                reason = f"message key {message.key!r} is not the meter id {reading.meter_id!r}"
                await out.send([dead_letter("validate", reason, message)])
                continue
            record = meters.get(reading.meter_id)
            record, outs = validate_step(
                record, reading, message.value or b"",
                await config.meter_or_reload(reading.meter_id, message.timestamp), clock(),
                offline=reading.meter_id in offline, replay=behind(record, at(message)))
            meters[reading.meter_id] = note(record, at(message))
            offline.discard(reading.meter_id)
            await out.send(outs)

    @app.agent(accepted, concurrency=1)
    async def rate(stream: faust.StreamT) -> None:
        await config.ready.wait()
        async for event in stream.events():
            value, outs = _decode("rate", event.message)
            if value is not None:
                meter = str(value["meter_id"])
                setup = config.meter(meter)
                record = tiers.get(meter)
                record, outs = rate_step(record, value, setup,
                                         config.book(setup.tariff_id if setup else None),
                                         replay=behind(record, at(event.message)))
                tiers[meter] = note(record, at(event.message))
            await out.send(outs)

    @app.agent(wallet_in, concurrency=1)
    async def wallet(stream: faust.StreamT) -> None:
        await config.ready.wait()
        async for event in stream.events():
            message = event.message
            value, outs = _decode("wallet", message)
            account_id = (message.key or b"").decode(errors="replace")
            setup = await config.account_or_reload(account_id, message.timestamp)
            if value is not None and setup is None:
                outs = [dead_letter("wallet", f"unknown account {account_id!r}", message)]
            elif value is not None and setup is not None:
                step = {topics.RATED_INTERVALS: charge_step, topics.PAYMENTS: payment_step}
                record = wallets.get(account_id)
                replay = behind(record, at(message))
                if message.topic == TICKS:
                    record, outs = tick_step(record, datetime.fromisoformat(value["at"]), setup,
                                             replay=replay)
                else:
                    record, outs = step[message.topic](record, value, setup, replay=replay)
                wallets[account_id] = note(record, at(message))
            await out.send(outs)

    @app.timer(interval=offline_check_s)
    async def watch_meters() -> None:
        """Meters silent past their expected interval are announced offline."""
        now = clock()
        for meter_id, record in list(meters.items()):
            if record is None or meter_id in offline:
                continue
            outs = silence_step(record, config.meter(meter_id), now)
            if outs:
                offline.add(meter_id)
                await out.send(outs)

    @app.timer(interval=offline_check_s)
    async def deferred_disconnects() -> None:
        """Accounts whose keep-supply window has ended get a tick through their partition."""
        now = clock()
        for account_id, record in list(wallets.items()):
            if disconnect_due(record, now, config.account(account_id)):
                await out.topic(TICKS).send(key=account_id.encode(),
                                            value=_json({"at": now.isoformat()}))


def utc_now() -> datetime:
    return datetime.now(UTC)
