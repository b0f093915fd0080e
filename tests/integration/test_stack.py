"""The local stack as a user sees it: healthy services reachable by clients that are not ours."""

from __future__ import annotations

import json
import shutil
import subprocess

import psycopg
import pytest

from contracts.topics import TOPICS
from meterflow.broker.platform import platform_user
from meterflow.settings import Settings
from meterflow.stack import local

pytestmark = pytest.mark.integration


def test_every_service_healthy_with_pid_and_port(stack: Settings) -> None:
    rows = {row.name: row for row in local.status(stack)}
    assert set(rows) == {"kafka", "postgres", "mosquitto", "broker-sync"}
    for row in rows.values():
        assert row.health.healthy, row
        assert row.pid is not None
    assert rows["kafka"].port == stack.kafka_port
    assert rows["postgres"].health.detail.startswith("timescaledb 2.")
    assert "apache edition" in rows["postgres"].health.detail


def test_kcat_lists_project_topics_with_partitions_and_configs(stack: Settings) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is installed by scripts/setup.sh"
    out = subprocess.run(
        [kcat, "-b", stack.bootstrap_servers, "-L", "-J"], capture_output=True, check=True,
        timeout=30,
    )
    listed = {t["topic"]: len(t["partitions"]) for t in json.loads(out.stdout)["topics"]}
    for spec in TOPICS:
        assert listed.get(spec.name) == stack.topic_partitions, spec.name


def test_compacted_topics_are_compacted(stack: Settings) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    try:
        for spec in TOPICS:
            response = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, spec.name)]
            )
            entries = response["topic"][spec.name]
            expected = "compact" if spec.compacted else "delete"
            assert entries["cleanup.policy"]["value"] == expected, spec.name
            if not spec.compacted and spec.retention_days:
                assert entries["retention.ms"]["value"] == str(spec.retention_days * 86400000)
    finally:
        admin.close()


def test_mosquitto_requires_the_generated_credentials(stack: Settings) -> None:
    bridge = platform_user(stack, "bridge")
    user, password = bridge.user, bridge.password.get_secret_value()
    base = ["mosquitto_sub", "-h", stack.mqtt_host, "-p", str(stack.mqtt_port),
            "-t", "meters/+/readings", "-E"]
    ok = subprocess.run([*base, "-u", user, "-P", password], capture_output=True, timeout=15)
    assert ok.returncode == 0, ok.stderr
    anonymous = subprocess.run(base, capture_output=True, timeout=15)
    assert anonymous.returncode != 0
    assert b"not authorised" in anonymous.stderr.lower() or b"refused" in anonymous.stderr.lower()
    wrong = subprocess.run([*base, "-u", user, "-P", password + "x"], capture_output=True,
                           timeout=15)
    assert wrong.returncode != 0


def test_schema_has_hypertable_readings(db: psycopg.Connection) -> None:
    rows = db.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1"
    ).fetchall()
    assert ("readings",) in rows
    for table in ("accounts", "meters", "readings", "dead_letters", "schema_migrations"):
        assert db.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (table,)


def test_postgres_is_not_the_system_cluster(stack: Settings, db: psycopg.Connection) -> None:
    [data_dir] = db.execute("SHOW data_directory").fetchone() or [None]
    assert str(stack.state_dir.resolve()) in str(data_dir)
    assert db.execute("SHOW port").fetchone() == (str(stack.pg_port),)
