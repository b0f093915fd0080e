"""Settings, read once at the entry point (``meterflow.cli``) and passed down.

Every field can be set with an environment variable ``METERFLOW_<FIELD>`` (for example
``METERFLOW_KAFKA_PORT=9092``) or in a ``.env`` file in the working directory.
Default ports are deliberately non-standard so the local stack never collides with
system services.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.zones import DEFAULT_REPORT_TIMEZONE, zone

MqttTls = Literal["off", "on", "only"]


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

    # MQTT: the platform's own users (docs/operations.md#security); devices have their own
    # credentials in the database (`meterflow device credentials`).
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(11883, ge=1, le=65535, description="Plain MQTT port")
    mqtt_user: str | None = Field(
        None, description="This process's MQTT user, overriding its role's platform user "
        "(a broker managed elsewhere with one user)")
    mqtt_password: SecretStr | None = Field(None, description="Password of mqtt_user")
    mqtt_bridge_user: str = "meterflow-bridge"
    mqtt_bridge_password: SecretStr | None = Field(
        None, description="default: generated into the state folder by `stack up`")
    mqtt_dispatcher_user: str = "meterflow-dispatcher"
    mqtt_dispatcher_password: SecretStr | None = None
    mqtt_monitor_user: str = "meterflow-monitor"
    mqtt_monitor_password: SecretStr | None = None
    mqtt_tls: MqttTls = Field(
        "off", description="off: plain MQTT; on: clients use TLS on mqtt_tls_port (the local "
        "broker serves both); only: the local broker serves TLS alone")
    mqtt_tls_port: int = Field(11884, ge=1, le=65535, description="MQTT over TLS port")
    mqtt_ca_file: Path | None = Field(
        None, description="CA bundle the clients trust; default: the local stack's CA, "
        "else the system's")
    mqtt_tls_cert_file: Path | None = Field(
        None, description="Local broker's certificate chain; default: made by `stack up`")
    mqtt_tls_key_file: Path | None = Field(None, description="Key of mqtt_tls_cert_file")
    mqtt_auth_dir: Path | None = Field(
        None, description="Where `meterflow broker sync` writes passwd and acl; "
        "default: <state>/mosquitto")
    mqtt_auth_period_s: float = Field(
        30.0, ge=1, description="Full re-render of the broker's files even without a change")
    mqtt_identity_check: bool = Field(
        True, description="The bridge dead-letters readings of meters without a live MQTT "
        "identity (their own credential or their gateway's)")

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
    api_tls_cert_file: Path | None = Field(None, description="Serve HTTPS with this chain")
    api_tls_key_file: Path | None = Field(None, description="Key of api_tls_cert_file")
    api_forwarded_allow_ips: str = Field(
        "", description="Proxies whose X-Forwarded-For/-Proto are trusted (comma list); "
        "empty: none, the peer address is the client's")
    api_token_ttl_days: int = Field(90, ge=1, le=3650, description="Default token lifetime")
    api_token_max_ttl_days: int = Field(
        365, ge=1, le=3650, description="Longest lifetime a token may be given")
    api_auth_max_failures: int = Field(
        10, ge=1, le=10_000, description="Failed authentications per client address (or "
        "user name) within api_auth_window_s before it is blocked")
    api_auth_window_s: int = Field(300, ge=1, le=86_400)
    api_auth_block_s: int = Field(900, ge=1, le=86_400, description="How long a block lasts")
    billing_period_s: float = Field(
        60.0, ge=0, description="Property-billing rounds in the API process (charges, "
        "apportionment, bill settlement and notices) every this many seconds; 0: none")
    billing_day: int = Field(0, ge=0, le=28, description="Local day of the month on which "
                             "last month's postpaid bills are drafted; 0: on demand only")
    billing_due_days: int = Field(15, ge=0, le=365, description="Days after a billing "
                                  "period's end until its bill is due")

    # Web console (`meterflow api` serves it under /console; docs/console.md)
    console_idle_timeout_s: int = Field(
        1800, ge=60, le=86_400, description="A console session ends after this long without "
        "a request")
    console_session_max_s: int = Field(
        43_200, ge=300, le=604_800, description="A console session ends this long after "
        "sign-in, however busy")
    console_secure_cookie: bool | None = Field(
        None, description="Mark the session cookie Secure; unset: when the API serves HTTPS "
        "(api_tls_cert_file) or a trusted proxy says the request came over HTTPS")

    # Tenant self-service and online payment (meterflow/tenant/, docs/tenant.md). A
    # gateway is on when its merchant id (WeChat) or app id (Alipay) is set; keys are read
    # from files kept outside the repository.
    tenant_base_url: str = Field(
        "http://127.0.0.1:8080", description="Public URL of MeterFlow as tenants and the "
        "gateways reach it: links, return pages and notification URLs start with it")
    tenant_link_ttl_days: int = Field(365, ge=1, le=3650, description="Default lifetime of "
                                      "a tenant access link")
    tenant_presets_yuan: str = Field("20,50,100,200", description="Top-up amounts offered "
                                     "on the tenant page (yuan, comma list)")
    order_query_after_s: float = Field(
        120.0, ge=1, description="An order with no notification is asked of its gateway "
        "after this (then with a doubling wait)")
    order_expire_s: float = Field(1800.0, ge=60, description="An unpaid order is closed at "
                                  "the gateway after this")
    settle_period_s: float = Field(10.0, gt=0, description="Round period of `meterflow pay "
                                   "settle`")
    wechat_mchid: str = Field("", description="WeChat Pay merchant id; empty: WeChat Pay off")
    wechat_appid: str = Field("", description="Official account app id the merchant pays with")
    wechat_app_secret: SecretStr | None = Field(
        None, description="Official account secret, for OAuth sign-in (empty: no sign-in)")
    wechat_cert_serial_no: str = Field("", description="Serial of the merchant API certificate")
    wechat_private_key_file: Path | None = Field(None, description="Merchant API private key "
                                                 "(apiclient_key.pem)")
    wechat_apiv3_key_file: Path | None = Field(None, description="File holding the APIv3 key")
    wechat_platform_public_key_file: Path | None = Field(
        None, description="WeChat Pay platform public key (pub_key.pem)")
    wechat_platform_public_key_id: str = Field("", description="Its id, PUB_KEY_ID_...")
    wechat_platform_cert_dir: Path | None = Field(
        None, description="Folder of platform certificates (*.pem), the older way to verify")
    wechat_api_url: str = Field("https://api.mch.weixin.qq.com", description="WeChat Pay API")
    wechat_oauth_url: str = Field("https://open.weixin.qq.com", description="OAuth authorize")
    wechat_sns_url: str = Field("https://api.weixin.qq.com", description="OAuth token API")
    alipay_app_id: str = Field("", description="Alipay application id; empty: Alipay off")
    alipay_seller_id: str = Field("", description="The merchant's Alipay user id (2088...)")
    alipay_private_key_file: Path | None = Field(None, description="Application private key")
    alipay_public_key_file: Path | None = Field(None, description="Alipay's public key (not "
                                                "the application's)")
    alipay_gateway_url: str = Field("https://openapi.alipay.com/gateway.do",
                                    description="Alipay open platform gateway")

    # Notifier (connectors/notify): gateways, delivery policy and texts; docs/contracts.md
    notify_config: Path | None = Field(None, description="Notifier configuration YAML")

    # Every long-running service: GET /health on this port (0: none; see runtime/health.py)
    health_port: int = Field(0, ge=0, le=65535, description="Health endpoint port, 0: none")
    health_host: str = Field("0.0.0.0", description="Address the health endpoint binds")

    # Reports: local days and months are the site's (sites.timezone); meters and accounts in
    # no site use this zone, which `meterflow db migrate` writes for SQL (report_settings)
    report_timezone: str = Field(
        DEFAULT_REPORT_TIMEZONE, max_length=64,
        description="IANA zone of report days for meters and accounts in no site")

    # Migrations: the sql/ folder of the checkout unless set (the container image sets it)
    sql_dir: Path | None = Field(None, description="Folder of the numbered SQL migrations")

    @field_validator("report_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zone(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Asia/Shanghai") \
                from None
        return value

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

    @property
    def mqtt_client_port(self) -> int:
        """The port clients connect to: the TLS one when TLS is on."""
        return self.mqtt_port if self.mqtt_tls == "off" else self.mqtt_tls_port

    def as_env(self) -> dict[str, str]:
        """These settings as ``METERFLOW_*`` variables, for a child process that must use
        the same ones (the local stack's broker sync)."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, Path):  # a child may run in another working directory
                value = value.resolve()
            env[f"METERFLOW_{name.upper()}"] = str(value).lower() if isinstance(
                value, bool) else str(value)
        return env
