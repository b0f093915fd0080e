"""Every Kafka topic MeterFlow uses, with its partitions and configuration.

This table is the single source: `meterflow stack up` (and `meterflow topics create`) create
these topics; the stream processors and the connectors refer to them by these names. Schemas are
documented in docs/contracts.md. Keyed topics are partitioned by meter or account so that one
entity's events stay in order; latest-state topics are compacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    description: str
    compacted: bool = False
    retention_days: int | None = 7
    partitions: int | None = None  # None: the configured default
    extra: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        conf = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_days is not None and not self.compacted:
            conf["retention.ms"] = str(self.retention_days * DAY_MS)
        if self.compacted:
            conf["min.cleanable.dirty.ratio"] = "0.1"
            conf["segment.ms"] = str(DAY_MS)
        conf.update(self.extra)
        return conf


RAW_READINGS = "meterflow.readings.raw"
ACCEPTED_READINGS = "meterflow.readings.accepted"
REJECTED_READINGS = "meterflow.readings.rejected"
DEAD_LETTERS = "meterflow.deadletter"
RATED_INTERVALS = "meterflow.intervals.rated"
LEDGER = "meterflow.ledger"
BALANCES = "meterflow.balances"
ALARMS = "meterflow.alarms"
COMMANDS = "meterflow.commands"
COMMAND_ACKS = "meterflow.commands.acks"
METER_EVENTS = "meterflow.meter.events"
PAYMENTS = "meterflow.payments"
METER_TICKS = "meterflow.meter.ticks"
WALLET_SIGNALS = "meterflow.wallet.signals"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(RAW_READINGS, "meter_id", "Normalised readings from every connector"),
    TopicSpec(ACCEPTED_READINGS, "meter_id", "Validated readings and the interval each closes"),
    TopicSpec(REJECTED_READINGS, "meter_id", "Readings refused by validation, with the reason",
              retention_days=30),
    TopicSpec(DEAD_LETTERS, "source", "Input that could not be parsed, with raw bytes",
              retention_days=30),
    TopicSpec(RATED_INTERVALS, "meter_id", "Consumption between readings, rated"),
    TopicSpec(LEDGER, "account_id", "Append-only ledger entries in fen", retention_days=90),
    TopicSpec(BALANCES, "account_id", "Latest balance and supply state", compacted=True),
    TopicSpec(ALARMS, "account_id", "Low-balance and supply alarms", retention_days=30),
    TopicSpec(COMMANDS, "meter_id", "Disconnect and reconnect commands", retention_days=30),
    TopicSpec(COMMAND_ACKS, "meter_id", "Command acknowledgements", retention_days=30),
    TopicSpec(METER_EVENTS, "meter_id", "Online/offline, faults, stopped meters",
              retention_days=30),
    TopicSpec(METER_TICKS, "meter_id", "Clock ticks: look at a silent meter (internal)",
              retention_days=1),
    TopicSpec(WALLET_SIGNALS, "account_id",
              "Clock ticks and command outcomes for the wallet (internal)", retention_days=7),
    TopicSpec(PAYMENTS, "account_id", "Top-ups, refunds and adjustments from the outbox",
              retention_days=90),
)
