"""Settings, read once at the entry point (``meterflow.cli``) and passed down.

Every field can be set with an environment variable ``METERFLOW_<FIELD>`` (for example
``METERFLOW_KAFKA_PORT=9092``) or in a ``.env`` file in the working directory.
Default ports are deliberately non-standard so the local stack never collides with
system services.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Frozen configuration of one MeterFlow process."""

    model_config = SettingsConfigDict(
        env_prefix="METERFLOW_", env_file=".env", extra="ignore", frozen=True
    )

    state_dir: Path = Field(Path(".stack"), description="Folder of the local stack's state")

    # Kafka
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_bootstrap: str | None = Field(
        None, description="host:port list of an existing cluster; default: the local broker"
    )
    kafka_heap: str = "512m"
    topic_partitions: int = Field(4, ge=1, description="Partitions of keyed topics")
    topic_replication: int = Field(1, ge=1, description="Replication factor of new topics")

    # PostgreSQL / TimescaleDB
    pg_host: str = "127.0.0.1"
    pg_port: int = 15432
    pg_user: str = "meterflow"
    pg_password: str = "meterflow"
    pg_database: str = "meterflow"
    pg_dsn: str | None = Field(None, description="libpq DSN of an existing database")

    # MQTT
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 11883
    mqtt_user: str = "meterflow"
    mqtt_password: str | None = Field(
        None, description="default: the password generated into the state folder"
    )

    # Stream workers (pipeline/worker.py)
    worker_id: str = Field("meterflow", description="Consumer group of the processors; the "
                           "sinks use <worker_id>-sink")
    worker_web_host: str = Field(
        "127.0.0.1", description="Address the worker's web server (GET /health) binds; "
        "0.0.0.0 in a pod so the kubelet's probes reach it"
    )
    worker_web_port: int = 16066
    commit_interval_s: float = Field(
        0.25, gt=0, le=60, description="Processors' transaction commit period: outputs "
        "become visible at each commit")
    sink_commit_interval_s: float = Field(
        0.5, gt=0, le=60, description="Sinks' write-and-commit period")
    config_refresh_s: float = Field(5.0, gt=0, description="Configuration reload period")
    offline_check_s: float = Field(
        15.0, gt=0, description="Clock period: silent meters, deferred cuts, command retries")
    command_ttl_s: float = Field(900.0, ge=10, description="A supply command's deadline, "
                                 "counted from when it is made")
    command_retry_base_s: float = Field(60.0, gt=0, description="First wait before a "
                                        "command that expired or failed is issued again")
    command_retry_cap_s: float = Field(3600.0, gt=0, description="Longest wait between "
                                       "attempts (the wait doubles)")
    command_max_attempts: int = Field(8, ge=1, le=100, description="Attempts per supply "
                                      "command before operators are asked to step in")
    worker_session_timeout_s: float = Field(
        30.0, ge=6, le=300,
        description="Kafka group session timeout: how soon a dead worker's partitions move")
    metrics_period_s: float = Field(
        30.0, ge=0, description="Period of the pipeline_metrics rows, 0: none (metrics.py)")

    # Operators' HTTP API (`meterflow api`, meterflow/api/)
    api_host: str = Field("127.0.0.1", description="Address the API listens on")
    api_port: int = Field(8080, ge=1, le=65535, description="Port of the API")

    # Notifier (connectors/notify): gateways, delivery policy and texts; docs/contracts.md
    notify_config: Path | None = Field(None, description="Notifier configuration YAML")

    # Every long-running service: GET /health on this port (0: none; see meterflow/health.py)
    health_port: int = Field(0, ge=0, le=65535, description="Health endpoint port, 0: none")
    health_host: str = Field("0.0.0.0", description="Address the health endpoint binds")

    # Migrations: the sql/ folder of the checkout unless set (the container image sets it)
    sql_dir: Path | None = Field(None, description="Folder of the numbered SQL migrations")

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def dsn(self) -> str:
        if self.pg_dsn:
            return self.pg_dsn
        return (
            f"host={self.pg_host} port={self.pg_port} user={self.pg_user} "
            f"password={self.pg_password} dbname={self.pg_database}"
        )

    def mqtt_credentials(self) -> tuple[str, str]:
        """User and password for the broker; the local stack generates the password."""
        if self.mqtt_password is not None:
            return self.mqtt_user, self.mqtt_password
        secret = self.state_dir / "mosquitto" / "client.secret"
        if not secret.exists():
            raise FileNotFoundError(
                f"no MQTT password: set METERFLOW_MQTT_PASSWORD or run `meterflow stack up` "
                f"(expected {secret})"
            )
        return self.mqtt_user, secret.read_text().strip()
