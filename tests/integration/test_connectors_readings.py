"""A mixed fleet on every protocol delivers readings to Kafka; bad MQTT input is dead-lettered."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator

import paho.mqtt.publish as mqtt_publish
import psycopg
import pytest

from connectors.mqtt.bridge import MqttBridge
from connectors.polling.framed import FramePoller
from connectors.polling.modbus import ModbusLoop
from connectors.polling.protocols import CJT188, DLT645
from connectors.publisher import KafkaOut
from connectors.simulator.fleet import FleetThread
from contracts.topics import DEAD_LETTERS, RAW_READINGS
from meterflow.settings import Settings

from .connectors_support import TopicTail, broker_of, provisioned_fleet, run_id

pytestmark = pytest.mark.integration


@pytest.fixture()
def fleet(stack: Settings, db: psycopg.Connection) -> Iterator[FleetThread]:
    prefix = run_id()
    spec = {"seed": 11, "speed": 3600, "prefix": prefix, "groups": [
        {"protocol": "modbus", "count": 4}, {"protocol": "dlt645", "count": 4},
        {"protocol": "cjt188", "count": 3},
        {"protocol": "mqtt", "count": 4, "profile": ["residential", "water"]}]}
    thread = FleetThread(provisioned_fleet(stack, db, spec, f"{prefix}gateway", per_bus=2,
                                           mqtt_interval=0.5)).start()
    yield thread
    thread.stop()


def test_every_protocol_delivers_readings_and_bad_input_is_dead_lettered(
    stack: Settings, fleet: FleetThread
) -> None:
    readings, dead = TopicTail(stack, RAW_READINGS), TopicTail(stack, DEAD_LETTERS)
    out = KafkaOut.connect(stack.bootstrap_servers)
    bridge = MqttBridge(broker_of(stack), out, client_id=f"{fleet.fleet.meters[0].meter_id}-b")
    try:
        bridge.start()
        assert bridge.connected.wait(15), "bridge did not connect to the broker"
        entries = fleet.fleet.entries()
        prefix = entries[0].meter_id.split("SIM-")[0]

        async def poll_once() -> None:
            for proto in (DLT645, CJT188):
                stats = await FramePoller(proto, out, timeout=2).cycle(
                    [e for e in entries if e.protocol == proto.name])
                assert stats.unreachable == 0 and stats.dead_letters == 0, stats
            loop = ModbusLoop(out, timeout=2)
            stats = await loop.cycle([e for e in entries if e.protocol == "modbus"])
            loop.close()
            assert stats.readings == 4, stats

        asyncio.run(poll_once())
        # a malformed message from the gateway, on a topic its identity may publish on
        gateway = fleet.fleet.gateway
        assert gateway is not None and gateway.broker.password is not None
        mqtt_meter = next(e.meter_id for e in entries if e.protocol == "mqtt")
        auth = {"username": gateway.broker.user or "", "password": gateway.broker.password}
        bad_topic = f"meters/{mqtt_meter}/readings"
        bad = b'{"ts": "2026-07-01T10:00:00+08:00", "energy_kwh": "12.5", "volts": 230}'
        mqtt_publish.single(bad_topic, bad, qos=1, hostname=stack.mqtt_host,
                            port=stack.mqtt_port, auth=auth, client_id=f"{prefix}bad")
        out.flush(10)

        wanted = {e.meter_id: e for e in entries}

        def all_seen(records: list) -> bool:
            return wanted.keys() <= {r.key.decode() for r in records}

        got = readings.until(all_seen, 30, "a reading from every simulated meter")
        by_meter = {r.key.decode(): json.loads(r.value) for r in got
                    if r.key.decode() in wanted}
        for meter_id, entry in wanted.items():
            body = by_meter[meter_id]
            assert body["source"] == entry.protocol
            assert body["unit"] == ("m3" if entry.commodity == "water" else "kWh")
            if entry.commodity == "electricity":  # band registers on every electricity meter
                assert {"sharp", "peak", "flat", "valley"} <= body.keys(), body

        letters = dead.until(
            lambda rs: any(json.loads(r.value)["source"] == f"mqtt:{bad_topic}" for r in rs),
            20, "the dead letter of the malformed MQTT message")
        letter = next(json.loads(r.value) for r in letters
                      if json.loads(r.value)["source"] == f"mqtt:{bad_topic}")
        assert letter["stage"] == "mqtt-bridge"
        assert letter["reason"] == "field volts: unknown field"
        assert base64.b64decode(letter["raw_b64"]) == bad
        assert letter["id"].startswith(f"mqtt:{bad_topic}:")
        assert out.failed == 0
    finally:
        bridge.stop()
        out.close(10)
        readings.close()
        dead.close()
