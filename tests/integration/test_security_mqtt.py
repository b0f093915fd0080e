"""Per-device MQTT identities on the real Mosquitto: a device speaks for its own meters
only, a revoked device is cut off within seconds, TLS is verified, and a TLS-only broker
refuses plain connections. Foreign clients are Mosquitto's own `mosquitto_pub` and
`mosquitto_sub`, so the broker, not our code, is what refuses."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest

from connectors.mqtt.bridge import MqttBridge
from connectors.mqtt.client import Broker, TlsClient, make_client
from connectors.mqtt.contract import reading_payload
from connectors.mqtt.identity import Identities
from connectors.mqtt.identity import load_db as load_identities
from connectors.publisher import KafkaOut
from contracts.topics import DEAD_LETTERS, RAW_READINGS
from meterflow.broker.platform import platform_user
from meterflow.broker.sync import wait_applied
from meterflow.settings import Settings
from meterflow.stack.mosquitto import Mosquitto
from meterflow.stack.tls import ensure_ca
from services.devices import credentials, gateways

from .conftest import PORT_BASE, REPO, env_of, ports, state_root, wait_for
from .connectors_support import TopicTail, broker_of

pytestmark = pytest.mark.integration


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def meter(db: psycopg.Connection, meter_id: str) -> None:
    db.execute("INSERT INTO meters (meter_id, commodity, protocol) VALUES (%s, 'electricity', "
               "'mqtt')", (meter_id,))


def credential(db: psycopg.Connection, kind: str, device_id: str) -> str:
    with db.transaction():
        return credentials.create(db, credentials.Device(kind, device_id),  # type: ignore[arg-type]
                                  "tests").password


def cli(stack: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterflow.cli", *args], cwd=REPO,
                          env=env_of(stack), capture_output=True, text=True, timeout=120)


class Devices:
    """Meters A and B with credentials of their own, gateway G speaking for meter C."""

    def __init__(self, db: psycopg.Connection) -> None:
        self.a, self.b, self.c = uid("MA"), uid("MB"), uid("MC")
        self.g = uid("GW")
        for m in (self.a, self.b, self.c):
            meter(db, m)
        with db.transaction():
            gateways.put_gateway(db, self.g, "test", None)
            gateways.attach(db, self.g, [self.c])
        self.password = {self.a: credential(db, "meter", self.a),
                         self.b: credential(db, "meter", self.b),
                         self.g: credential(db, "gateway", self.g)}
        assert wait_applied(db) is not None


@pytest.fixture()
def fleet(db: psycopg.Connection) -> Devices:
    return Devices(db)


def base(stack: Settings, user: str, password: str) -> list[str]:
    """Plain MQTT 5 as a foreign client would connect (user, password)."""
    return ["-h", stack.mqtt_host, "-p", str(stack.mqtt_port), "-V", "mqttv5", "-u", user,
            "-P", password]


def pub(stack: Settings, user: str, password: str, topic: str, payload: bytes,
        ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["mosquitto_pub", *base(stack, user, password), "-q", "1",
                           "-t", topic, "-m", payload.decode()],
                          capture_output=True, timeout=20)


class Sub:
    """A `mosquitto_sub` running in the background: what it received, and how it ended."""

    def __init__(self, stack: Settings, user: str, password: str, topic: str,
                 seconds: int = 4) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto_sub", *base(stack, user, password), "-q", "1", "-t", topic, "-v",
             "-W", str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.7)  # subscribed before anything is published

    def result(self) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=30)
        return out.decode(), err.decode()


def monitor(stack: Settings) -> tuple[str, str]:
    user = platform_user(stack, "monitor")
    return user.user, user.password.get_secret_value()


READING = reading_payload(datetime.fromisoformat("2026-07-01T10:00:00+08:00"),
                          Decimal("12.5"), water=False)


def test_a_device_publishes_and_receives_for_its_own_meters_only(stack: Settings,
                                                                 fleet: Devices) -> None:
    a, b, c, g = fleet.a, fleet.b, fleet.c, fleet.g
    watcher = Sub(stack, *monitor(stack), "meters/#")
    # A for itself: accepted. A for B, and the gateway for a meter not behind it: refused
    # by the broker (MQTT 5 PUBACK 0x87, "not authorised").
    own = pub(stack, a, fleet.password[a], f"meters/{a}/readings", READING)
    assert own.returncode == 0, own.stderr
    for user, topic in ((a, f"meters/{b}/readings"), (a, f"meters/{b}/acks"),
                        (g, f"meters/{a}/readings"), (b, f"meters/{b}/commands")):
        refused = pub(stack, user, fleet.password[user], topic, READING)
        assert b"not authori" in refused.stderr.lower(), (user, topic, refused)
    via_gateway = pub(stack, g, fleet.password[g], f"meters/{c}/readings", READING)
    assert via_gateway.returncode == 0, via_gateway.stderr
    seen, _ = watcher.result()
    topics = {line.split(" ", 1)[0] for line in seen.splitlines()}
    assert topics == {f"meters/{a}/readings", f"meters/{c}/readings"}, seen


def test_a_meter_taken_from_its_gateway_is_no_longer_its_to_speak_for(
        stack: Settings, db: psycopg.Connection, fleet: Devices) -> None:
    c, g = fleet.c, fleet.g
    gateway = Connected(stack, g, fleet.password[g])
    try:
        with db.transaction():
            assert gateways.detach(db, g, [c]) == [c]
        assert wait_applied(db) is not None
        refused = pub(stack, g, fleet.password[g], f"meters/{c}/readings", READING)
        assert b"not authori" in refused.stderr.lower(), refused
        assert gateway.dropped_at is None  # the gateway itself stays connected
        status = json.loads(cli(stack, "broker", "status", "--json").stdout)
        assert status and all(s["error"] == "" and s["users"] >= 3 for s in status), status
    finally:
        gateway.close()


def test_a_device_receives_no_command_of_another_meter(stack: Settings, fleet: Devices) -> None:
    a, b, c, g = fleet.a, fleet.b, fleet.c, fleet.g
    # Mosquitto 2.0 does not check SUBSCRIBE against its ACL file; it checks read access on
    # every message it would deliver, so a foreign subscription stays empty.
    spies = [Sub(stack, a, fleet.password[a], f"meters/{b}/commands"),
             Sub(stack, a, fleet.password[a], "meters/+/commands"),
             Sub(stack, g, fleet.password[g], "meters/#")]
    owner = Sub(stack, b, fleet.password[b], f"meters/{b}/commands")
    gateway = Sub(stack, g, fleet.password[g], f"meters/{c}/commands")
    dispatcher = platform_user(stack, "dispatcher")
    for target in (b, c):
        sent = pub(stack, dispatcher.user, dispatcher.password.get_secret_value(),
                   f"meters/{target}/commands", b'{"command_id": "x", "action": "disconnect"}')
        assert sent.returncode == 0, sent.stderr
    for spy in spies[:2]:
        out, _ = spy.result()
        assert out == "", out
    out, _ = spies[2].result()
    assert out.splitlines() == [f'meters/{c}/commands {{"command_id": "x", "action": '
                                f'"disconnect"}}'], out
    assert owner.result()[0].startswith(f"meters/{b}/commands ")
    assert gateway.result()[0].startswith(f"meters/{c}/commands ")
    # the platform's users are limited too: the bridge cannot command a meter
    bridge = platform_user(stack, "bridge")
    refused = pub(stack, bridge.user, bridge.password.get_secret_value(),
                  f"meters/{b}/commands", b"{}")
    assert b"not authori" in refused.stderr.lower(), refused


class Connected:
    """A device's paho client that records when the broker dropped it."""

    def __init__(self, stack: Settings, user: str, password: str) -> None:
        self.up = threading.Event()
        self.dropped_at: float | None = None
        self.client = make_client(f"{user}-{uuid.uuid4().hex[:4]}",
                                  Broker(stack.mqtt_host, stack.mqtt_port, user, password))
        self.client.reconnect_delay_set(60, 120)  # no quick reconnect during the test

        def on_connect(*args: Any) -> None:
            if not args[3].is_failure:
                self.up.set()

        def on_disconnect(*_a: Any) -> None:
            if self.dropped_at is None:
                self.dropped_at = time.monotonic()

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.connect(stack.mqtt_host, stack.mqtt_port)
        self.client.loop_start()
        assert self.up.wait(10), f"{user} could not connect"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_revoked_device_is_cut_off_within_seconds_and_others_stay(
        stack: Settings, db: psycopg.Connection, fleet: Devices) -> None:
    a, b, g = fleet.a, fleet.b, fleet.g
    victim = Connected(stack, a, fleet.password[a])
    bystanders = [Connected(stack, b, fleet.password[b]), Connected(stack, g, fleet.password[g])]
    try:
        started = time.monotonic()
        done = cli(stack, "device", "credentials", "revoke", a, "--wait")
        assert done.returncode == 0, done.stderr
        assert "in force at the broker" in done.stderr, done.stderr
        wait_for(lambda: victim.dropped_at is not None, 10, "the broker to drop the device")
        assert victim.dropped_at is not None
        took = victim.dropped_at - started
        print(f"\nrevoked device dropped {took:.2f}s after `meterflow device credentials "
              "revoke` started")
        assert took < 5.0
        time.sleep(0.5)
        assert all(c.dropped_at is None for c in bystanders), "a reload dropped other clients"
        # from the commit itself (no command start-up): the gateway
        with db.transaction():
            credentials.revoke(db, credentials.Device("gateway", g), "tests")
        committed = time.monotonic()
        wait_for(lambda: bystanders[1].dropped_at is not None, 10, "the gateway to be dropped")
        assert bystanders[1].dropped_at is not None
        print(f"revoked gateway dropped {bystanders[1].dropped_at - committed:.3f}s after "
              "the commit")
        assert bystanders[1].dropped_at - committed < 2.0
        assert bystanders[0].dropped_at is None
        again = pub(stack, a, fleet.password[a], f"meters/{a}/readings", READING)
        assert again.returncode != 0 and b"not authori" in again.stderr.lower(), again
        audit = db.execute("SELECT user_name FROM audit_log WHERE action = "
                           "'device.credential.revoke' AND target = %s", (f"meter:{a}",))
        assert audit.fetchall() == [("server-cli",)]
    finally:
        for client in (victim, *bystanders):
            client.close()


def test_rotation_replaces_the_password_at_the_broker(stack: Settings,
                                                      fleet: Devices) -> None:
    b = fleet.b
    old = Connected(stack, b, fleet.password[b])
    try:
        done = cli(stack, "device", "credentials", "rotate", b, "--json", "--wait")
        assert done.returncode == 0, done.stderr
        issued = json.loads(done.stdout)
        assert issued["username"] == b and issued["password"] != fleet.password[b]
        wait_for(lambda: old.dropped_at is not None, 10, "the old password's client to go")
        refused = pub(stack, b, fleet.password[b], f"meters/{b}/readings", READING)
        assert refused.returncode != 0, refused
        accepted = pub(stack, b, issued["password"], f"meters/{b}/readings", READING)
        assert accepted.returncode == 0, accepted.stderr
        listed = json.loads(cli(stack, "device", "credentials", "list", b, "--json").stdout)
        assert [c["revoke_reason"] for c in listed] == ["rotated", None]
    finally:
        old.close()


def test_bridge_dead_letters_a_reading_whose_identity_lapsed(
        stack: Settings, db: psycopg.Connection, fleet: Devices) -> None:
    """What the broker still lets through (here: its ACL lags because the sync is paused)
    is refused by the bridge, with the reason and the raw bytes."""
    a, b = fleet.a, fleet.b
    identities = Identities(lambda: load_identities(db))
    out = KafkaOut.connect(stack.bootstrap_servers)
    raw, dead = TopicTail(stack, RAW_READINGS), TopicTail(stack, DEAD_LETTERS)
    bridge = MqttBridge(broker_of(stack), out, client_id=uid("bridge"), identities=identities)
    sync_pid = int((stack.state_dir.resolve() / "run" / "broker-sync.pid").read_text())
    try:
        bridge.start()
        assert bridge.connected.wait(15)
        os.kill(sync_pid, signal.SIGSTOP)
        with db.transaction():
            credentials.revoke(db, credentials.Device("meter", a), "tests")
        lapsed = pub(stack, a, fleet.password[a], f"meters/{a}/readings", READING)
        assert lapsed.returncode == 0, "the paused sync left the broker's ACL as it was"
        ok = pub(stack, b, fleet.password[b], f"meters/{b}/readings", READING)
        assert ok.returncode == 0
        letters = dead.until(lambda rs: any(json.loads(r.value)["source"] ==
                                            f"mqtt:meters/{a}/readings" for r in rs),
                             20, "the dead letter of the lapsed identity")
        letter = next(json.loads(r.value) for r in letters
                      if json.loads(r.value)["source"] == f"mqtt:meters/{a}/readings")
        assert letter["stage"] == "mqtt-bridge"
        assert letter["reason"] == (f"identity: meter {a} has no live MQTT credential and no "
                                    "gateway")
        assert base64.b64decode(letter["raw_b64"]) == READING
        raw.until(lambda rs: any(r.key.decode() == b for r in rs), 20, "B's reading")
        assert not any(r.key.decode() == a for r in raw.poll())
    finally:
        os.kill(sync_pid, signal.SIGCONT)
        bridge.stop()
        out.close(10)
        raw.close()
        dead.close()


def tls_args(stack: Settings, ca: Path) -> list[str]:
    user = platform_user(stack, "monitor")
    return ["-h", "127.0.0.1", "-p", str(stack.mqtt_tls_port), "--cafile", str(ca), "-u",
            user.user, "-P", user.password.get_secret_value(), "-t", "meters/x", "-E"]


def test_tls_listener_is_verified_by_clients(stack: Settings, tmp_path: Path) -> None:
    ca = stack.state_dir.resolve() / "tls" / "ca.crt"
    trusted = subprocess.run(["mosquitto_sub", *tls_args(stack, ca)], capture_output=True,
                             timeout=20)
    assert trusted.returncode == 0, trusted.stderr
    ensure_ca(tmp_path / "other")  # a CA that did not sign the broker's certificate
    foreign = subprocess.run(["mosquitto_sub", *tls_args(stack, tmp_path / "other" / "ca.crt")],
                             capture_output=True, timeout=20)
    assert foreign.returncode != 0
    assert b"TLS error" in foreign.stderr, foreign.stderr
    # our clients: the same verification through paho
    user = platform_user(stack, "monitor")
    for ca_file, ok in ((ca, True), (tmp_path / "other" / "ca.crt", False)):
        broker = Broker("127.0.0.1", stack.mqtt_tls_port, user.user,
                        user.password.get_secret_value(), tls=TlsClient(ca_file))
        client = make_client(uid("tls"), broker)
        if ok:
            assert client.connect(broker.host, broker.port) == mqtt.MQTT_ERR_SUCCESS
            client.disconnect()
        else:
            with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
                client.connect(broker.host, broker.port)


@pytest.fixture()
def tls_only(stack: Settings) -> Iterator[Settings]:
    """A second broker with the TLS listener only, on ports of its own."""
    own = ports(PORT_BASE + 2)
    settings = Settings.model_validate({
        "state_dir": state_root() / f"test-{PORT_BASE}-tls-only", "mqtt_tls": "only",
        "mqtt_port": own["mqtt_port"], "mqtt_tls_port": own["mqtt_tls_port"],
        "pg_port": stack.pg_port})
    broker = Mosquitto(settings)
    try:
        health = broker.start()
        assert health.healthy, health.detail
        yield settings
    finally:
        broker.stop()


def test_tls_only_broker_refuses_plain_connections(tls_only: Settings) -> None:
    ca = tls_only.state_dir.resolve() / "tls" / "ca.crt"
    assert subprocess.run(["mosquitto_sub", *tls_args(tls_only, ca)], capture_output=True,
                          timeout=20).returncode == 0
    user = platform_user(tls_only, "monitor")
    # nothing listens for plain MQTT: the connection itself is refused
    refused = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(tls_only.mqtt_port), "-u", user.user,
         "-P", user.password.get_secret_value(), "-t", "meters/x", "-E"],
        capture_output=True, timeout=20)
    assert refused.returncode != 0
    assert b"connection refused" in refused.stderr.lower(), refused.stderr
    # plain MQTT to the TLS port is never answered with a CONNACK
    answered = threading.Event()
    client = make_client(uid("plain"), Broker("127.0.0.1", tls_only.mqtt_tls_port, user.user,
                                              user.password.get_secret_value()))
    client.on_connect = lambda *_a: answered.set()
    client.connect_async("127.0.0.1", tls_only.mqtt_tls_port)
    client.loop_start()
    try:
        assert not answered.wait(3), "a plain client got an answer from the TLS listener"
    finally:
        client.disconnect()
        client.loop_stop()
