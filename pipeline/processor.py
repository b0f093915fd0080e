"""The stream processors on Quix Streams: the per-meter and per-account stages, wired.

One Quix ``Application`` per process with ``processing_guarantee="exactly-once"``: each
stage's state change (a RocksDB store and its changelog topic), every output message and
the input offsets commit in one Kafka transaction, so a worker killed at any moment
resumes from its last commit with state and outputs that agree (docs/decisions/
stream-engine.md). Two stateful stages, each over topics that share their keys and
partition counts:

* meters: ``meterflow.readings.raw`` + ``meterflow.meter.ticks`` +
  ``meterflow.commands.acks`` (key meter) -> pipeline/meter_stage.py;
* accounts: ``meterflow.intervals.rated`` + ``meterflow.payments`` +
  ``meterflow.wallet.signals`` (key account) -> pipeline/wallet_stage.py.

The functions here only decode, look up configuration, call the pure stage and hand its
outputs to the engine. Input that cannot be processed becomes a dead letter with its raw
bytes; nothing here stops the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from quixstreams import Application, State, message_context
from quixstreams.models import SerializationContext, Serializer, TopicConfig
from quixstreams.state.rocksdb import RocksDBOptions

from contracts import topics
from contracts.clock import Clock, utc_now
from contracts.commands import parse_ack
from contracts.dead_letter import DeadLetter
from contracts.errors import PayloadError
from contracts.messages import (
    MeterTick,
    PaymentMessage,
    RatedInterval,
    WalletSignal,
    read,
)
from contracts.raw_reading import parse_raw_reading
from pipeline import meter_stage, records, wallet_stage
from pipeline.billing.supply import CommandPolicy
from pipeline.config_source import ConfigSource
from pipeline.meter_stage import Out
from pipeline.worker_settings import WorkerSettings

log = logging.getLogger("meterflow.pipeline")
STATE = b"r"  # the one state key per message key: the stage's record
#: Longest wait of one consumer poll. Concatenated topics are read through the engine's
#: time-aligning buffer, whose poll waits for a full batch or this long: the default
#: (1 s) would add a second to every stage a record passes.
POLL_TIMEOUT_S = 0.05
#: How long the broker may hold an empty fetch. Requests on one connection are answered in
#: order, so every offset lookup the engine makes while partitions are assigned waits
#: behind a held fetch: at the client's default (500 ms) a restart spends seconds there.
FETCH_WAIT_MS = 50
#: Records buffered per partition to order a stage's topics by time. The engine reads a
#: partition's buffer to the end before it fetches again, so a deep buffer (its default is
#: 10,000) lets a backlog of readings run seconds ahead of the rated intervals and payments
#: that follow from them.
BUFFER_PER_PARTITION = 2000

METER_INPUTS = (topics.RAW_READINGS, topics.METER_TICKS, topics.COMMAND_ACKS)
#: The ``stage`` of a dead letter from each input (docs/contracts.md, dead letter).
STAGE_OF = {topics.RAW_READINGS: "validate", topics.METER_TICKS: "meter",
            topics.COMMAND_ACKS: "meter", topics.RATED_INTERVALS: "wallet",
            topics.PAYMENTS: "wallet", topics.WALLET_SIGNALS: "wallet"}
ACCOUNT_INPUTS = (topics.RATED_INTERVALS, topics.PAYMENTS, topics.WALLET_SIGNALS)
OUTPUTS = (topics.ACCEPTED_READINGS, topics.REJECTED_READINGS, topics.RATED_INTERVALS,
           topics.METER_EVENTS, topics.WALLET_SIGNALS, topics.LEDGER, topics.BALANCES,
           topics.ALARMS, topics.COMMANDS, topics.DEAD_LETTERS)



def _raw(value: bytes) -> bytes:
    """State values are the stages' own encoded records (pipeline/records.py)."""
    return value


class OutValue(Serializer):
    """Serialises a stage's :class:`Out` (its payload is already encoded)."""

    def __call__(self, value: Out, ctx: SerializationContext) -> bytes:
        return value.value


class OutKey(Serializer):
    def __call__(self, value: str, ctx: SerializationContext) -> bytes:
        return value.encode()


def dead_letter(stage: str, reason: str, value: bytes | None, key: bytes | None,
                timestamp_ms: int) -> Out:
    """A dead letter for the message being processed (where it was read is its id)."""
    ctx = message_context()
    letter = DeadLetter.from_kafka(
        stage=stage, reason=reason, topic=ctx.topic, partition=ctx.partition,
        offset=ctx.offset, timestamp_s=max(timestamp_ms, 0) / 1000, key=key, raw=value)
    return Out(topics.DEAD_LETTERS, ctx.topic, letter.to_json())


Step = Callable[[str, bytes, bytes | None, int, State], list[Out]]


def guarded(step: Step, value: bytes, key: bytes | None, timestamp: int,
            state: State) -> list[Out]:
    """Run one stage step; input it cannot take becomes a dead letter naming the reason."""
    topic = message_context().topic
    try:
        return step(topic, value, key, timestamp, state)
    except PayloadError as exc:
        return [dead_letter(STAGE_OF[topic], exc.reason, value, key, timestamp)]
    except Exception as exc:  # a bug must cost one message, never the worker
        log.exception("stage failed on %s", topic)
        return [dead_letter(STAGE_OF[topic], f"internal error: {exc!r}", value, key,
                            timestamp)]


class Stages:
    """The two stages' edges: decode, configuration, pure step, state, outputs."""

    def __init__(self, config: ConfigSource, clock: Clock, policy: CommandPolicy) -> None:
        self.config = config
        self.clock = clock
        self.policy = policy

    # -- meters ------------------------------------------------------------------------

    def meter(self, value: bytes, key: bytes | None, timestamp: int, headers: Any,
              state: State) -> list[Out]:
        return guarded(self._meter, value, key, timestamp, state)

    def _meter(self, topic: str, value: bytes, key: bytes | None, timestamp: int,
               state: State) -> list[Out]:
        meter = (key or b"").decode(errors="replace")
        if topic == topics.COMMAND_ACKS:
            ack = parse_ack(value)
            return meter_stage.on_ack(ack, self.config.meter_or_reload(ack.meter_id,
                                                                       timestamp / 1000))
        if not meter:
            raise PayloadError("message has no key (the meter id)")
        record = records.meter_record(state.get(STATE))
        if topic == topics.METER_TICKS:
            tick = read(MeterTick, value)
            now = datetime.fromisoformat(tick.at)
            after, outs = meter_stage.on_tick(record, now, self.config.meter(meter))
        else:
            reading = parse_raw_reading(value)
            if reading.meter_id != meter:
                # Per-meter state lives in the key's partition: a wrong key would split it.
                raise PayloadError(f"message key {meter!r} is not the meter id "
                                   f"{reading.meter_id!r}")
            setup = self.config.meter_or_reload(meter, timestamp / 1000)
            book = self.config.book(setup.tariff_id if setup else None)
            after, outs = meter_stage.on_reading(record, reading, value, setup, book,
                                                 self.clock())
        if after is not None and after is not record:
            state.set(STATE, records.encode(after))
        return outs

    # -- accounts ----------------------------------------------------------------------

    def account(self, value: bytes, key: bytes | None, timestamp: int, headers: Any,
                state: State) -> list[Out]:
        return guarded(self._account, value, key, timestamp, state)

    def _account(self, topic: str, value: bytes, key: bytes | None, timestamp: int,
                 state: State) -> list[Out]:
        account = (key or b"").decode(errors="replace")
        if not account:
            raise PayloadError("message has no key (the account id)")
        setup = self.config.account_or_reload(account, timestamp / 1000)
        if setup is None:
            raise PayloadError(f"unknown account {account!r}")
        record = records.wallet_record(state.get(STATE))
        now = self.clock()
        if topic == topics.RATED_INTERVALS:
            after, outs = wallet_stage.on_charge(record, read(RatedInterval, value), setup,
                                                 now, self.policy)
        elif topic == topics.PAYMENTS:
            payment = read(PaymentMessage, value)
            if payment.account_id != account:
                raise PayloadError(f"message key {account!r} is not the account id "
                                   f"{payment.account_id!r}")
            after, outs = wallet_stage.on_payment(record, payment, setup, now, self.policy)
        else:
            after, outs = wallet_stage.on_signal(record, read(WalletSignal, value), setup,
                                                 now, self.policy)
        if after != record:
            state.set(STATE, records.encode(after))
        return outs


def build(settings: WorkerSettings, config: ConfigSource, clock: Clock = utc_now,
          on_message: Callable[[str, int, int], None] | None = None) -> Application:
    """The processor application from settings read once at the entry point."""
    app = Application(
        broker_address=settings.bootstrap_servers,
        consumer_group=settings.group,
        processing_guarantee="exactly-once",
        auto_offset_reset="earliest",
        commit_interval=settings.commit_interval_s,
        consumer_poll_timeout=POLL_TIMEOUT_S,
        max_partition_buffer_size=BUFFER_PER_PARTITION,
        state_dir=str(settings.state_dir / "streams"),
        rocksdb_options=RocksDBOptions(dumps=_raw, loads=_raw),
        consumer_extra_config=settings.consumer_config(**{"fetch.wait.max.ms": FETCH_WAIT_MS}),
        producer_extra_config={"linger.ms": 5},
        on_message_processed=on_message,
        loglevel=None,
    )
    stages = Stages(config, clock, settings.command_policy)
    config_of = {spec.name: spec for spec in topics.TOPICS}
    outputs = {name: app.topic(name, key_serializer=OutKey(), value_serializer=OutValue(),
                               config=_config(app, config_of[name], settings))
               for name in OUTPUTS}

    def dataframe(names: tuple[str, ...]) -> Any:
        frames = [app.dataframe(app.topic(name, key_deserializer="bytes",
                                          value_deserializer="bytes",
                                          config=_config(app, config_of[name], settings)))
                  for name in names]
        merged = frames[0]
        for frame in frames[1:]:
            merged = merged.concat(frame)
        return merged

    def route(value: Out, key: Any, timestamp: int, headers: Any) -> Any:
        return outputs[value.topic]

    for names, step in ((METER_INPUTS, stages.meter), (ACCOUNT_INPUTS, stages.account)):
        frame = dataframe(names).apply(step, stateful=True, metadata=True, expand=True)
        frame.to_topic(route, key=lambda value: value.key)
    return app


def _config(app: Application, spec: topics.TopicSpec, settings: WorkerSettings) -> TopicConfig:
    """The topic's configuration as `meterflow topics create` makes it (contracts/topics.py),
    so an engine that creates a missing topic creates the same one."""
    return TopicConfig(num_partitions=spec.partitions or settings.topic_partitions,
                       replication_factor=settings.topic_replication,
                       extra_config=spec.configs())
