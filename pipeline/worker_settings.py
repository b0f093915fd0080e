"""What a worker process needs to know, read once at the entry point and passed down.

The command line builds this from ``meterflow.settings.Settings`` (``METERFLOW_*``);
nothing in pipeline/ reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.billing.supply import CommandPolicy


@dataclass(frozen=True)
class WorkerSettings:
    bootstrap_servers: str
    dsn: str
    #: Consumer group of the processors; the sinks use ``<group>-sink``.
    group: str
    state_dir: Path
    topic_partitions: int = 4
    topic_replication: int = 1
    #: How often the processors commit their Kafka transaction (state, outputs, offsets):
    #: outputs become visible to read-committed consumers at each commit.
    commit_interval_s: float = 0.25
    #: How often the sinks write their batches and commit.
    sink_commit_interval_s: float = 0.5
    session_timeout_s: float = 30.0
    config_refresh_s: float = 5.0
    #: Period of the clock (silent meters, deferred cuts, command retries).
    clock_period_s: float = 15.0
    metrics_period_s: float = 30.0
    health_host: str = "127.0.0.1"
    health_port: int = 0
    command_policy: CommandPolicy = field(default_factory=CommandPolicy)

    @property
    def sink_group(self) -> str:
        return f"{self.group}-sink"

    def consumer_config(self, **extra: object) -> dict[str, object]:
        """The consumer settings of both roles: how soon a silent worker's partitions move
        (the session timeout, heartbeats four times in it), and the role's own."""
        return {"session.timeout.ms": int(self.session_timeout_s * 1000),
                "heartbeat.interval.ms": int(self.session_timeout_s * 1000 / 4), **extra}
