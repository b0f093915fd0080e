"""Commands on Kafka reach simulated relays and valves; every command gets one final ack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from kafka import KafkaProducer

from connectors.dispatch.policy import RetryPolicy
from connectors.registry import Registry, load_db, upsert_db
from connectors.simulator.fleet import FleetThread
from contracts.commands import Command
from contracts.topics import COMMAND_ACKS, COMMANDS
from meterflow.settings import Settings

from .connectors_support import DispatcherThread, TopicTail, provisioned_fleet, run_id

pytestmark = pytest.mark.integration
FAST = RetryPolicy(base_s=0.2, factor=2.0, cap_s=1.0, attempt_timeout_s=1.0, max_refusals=2)


@pytest.fixture()
def rig(stack: Settings, db: psycopg.Connection) -> Iterator[tuple[FleetThread, DispatcherThread]]:
    prefix = run_id()
    spec = {"seed": 5, "speed": 3600, "prefix": prefix, "groups": [
        {"protocol": "modbus", "count": 2}, {"protocol": "dlt645", "count": 2},
        {"protocol": "cjt188", "count": 2},
        {"protocol": "mqtt", "count": 2, "profile": ["residential", "water"]}]}
    fleet = FleetThread(provisioned_fleet(stack, db, spec, f"{prefix}gateway",
                                          mqtt_interval=1.0)).start()
    assert fleet.fleet.gateway is not None and fleet.fleet.gateway.connected.wait(15)
    upsert_db(db, fleet.fleet.entries())  # the dispatcher reads the meters table (0002)

    def registry() -> Registry:
        with psycopg.connect(stack.dsn) as conn:
            return load_db(conn)

    dispatcher = DispatcherThread(stack, registry, FAST, f"{prefix}dispatcher").start()
    yield fleet, dispatcher
    dispatcher.stop()
    fleet.stop()


def command(meter_id: str, action: str, origin: str, ttl_s: float,
            issued: datetime | None = None) -> Command:
    return Command.create(meter_id, action, origin=origin,  # type: ignore[arg-type]
                          issued_at=issued or datetime.now(UTC), ttl=timedelta(seconds=ttl_s),
                          reason="integration test")


def test_commands_are_applied_queued_for_offline_meters_and_expire(
    stack: Settings, rig: tuple[FleetThread, DispatcherThread]
) -> None:
    fleet, _dispatcher = rig
    sim = fleet.fleet
    ids = [m.meter_id for m in sim.meters]
    mb1, mb2, dl1, dl2, cj1, cj2, mq1, mq2 = ids
    acks = TopicTail(stack, COMMAND_ACKS)
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")

    def send(cmd: Command) -> None:
        producer.send(COMMANDS, key=cmd.meter_id.encode(), value=cmd.to_json())

    # offline meters: DL/T 645 silent on its bus, MQTT meter not answering, Modbus gateway
    # timing out; the Modbus one stays offline until its command expires
    for meter_id in (dl2, mq2, mb2):
        sim.meter(meter_id).online = False
    applied = [command(m, "disconnect", f"{m}-1", 60) for m in (mb1, dl1, cj1, mq1, cj2)]
    queued = [command(m, "disconnect", f"{m}-1", 60) for m in (dl2, mq2)]
    expiring = command(mb2, "disconnect", f"{mb2}-1", 2.5)
    stale = command(cj1, "reconnect", f"{cj1}-stale", 1,
                    issued=datetime.now(UTC) - timedelta(minutes=5))
    unknown = command(f"{ids[0]}-NOPE", "disconnect", "nope", 60)
    for cmd in (*applied, *queued, expiring, stale, unknown):
        send(cmd)
    send(applied[0])  # a redelivery of a command: still one final ack
    producer.flush()

    def acks_for(records: list) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for r in records:
            body = json.loads(r.value)
            out.setdefault(body["command_id"], []).append(body)
        return out

    first = [*applied, expiring, stale, unknown]
    acks.until(lambda rs: {c.command_id for c in first} <= acks_for(rs).keys(), 30,
               "acks of the applied, expired, stale and unknown commands")
    got = acks_for(acks.records)
    for cmd in applied:
        ack = got[cmd.command_id][0]
        assert ack["status"] == "applied", ack
        assert ack["meter_id"] == cmd.meter_id and ack["attempts"] == 1
        assert not sim.meter(cmd.meter_id).supply_on  # relay tripped / valve closed
    assert got[expiring.command_id][0]["status"] == "expired"
    assert got[expiring.command_id][0]["attempts"] >= 2  # retried with backoff meanwhile
    assert got[stale.command_id][0] == {**got[stale.command_id][0], "status": "expired",
                                        "attempts": 0}
    assert got[unknown.command_id][0]["status"] == "failed"
    assert "not in the registry" in got[unknown.command_id][0]["detail"]
    assert sim.meter(mb2).supply_on  # never reached
    for cmd in queued:
        assert cmd.command_id not in got  # still queued while the meter is offline

    # consumption stops while the relay is open: registers frozen across a simulated hour
    before = sim.meter(dl1).registers(sim.clock())
    time.sleep(1.0)  # one simulated hour at speed 3600
    assert sim.meter(dl1).registers(sim.clock()) == before
    running = sim.meter(dl2).registers(sim.clock())[0]
    time.sleep(0.5)
    assert sim.meter(dl2).registers(sim.clock())[0] > running  # relay still closed

    for meter_id in (dl2, mq2):  # the meters come back
        sim.meter(meter_id).online = True
    acks.until(lambda rs: {c.command_id for c in queued} <= acks_for(rs).keys(), 20,
               "acks of the commands queued for offline meters")
    got = acks_for(acks.records)
    for cmd in queued:
        ack = got[cmd.command_id][0]
        assert ack["status"] == "applied" and ack["attempts"] > 1, ack
        assert not sim.meter(cmd.meter_id).supply_on

    # reconnect closes the relay again, and still one ack per command id
    again = command(dl1, "reconnect", f"{dl1}-2", 30)
    send(again)
    producer.flush()
    acks.until(lambda rs: again.command_id in acks_for(rs), 15, "the reconnect ack")
    assert sim.meter(dl1).supply_on
    time.sleep(1.0)
    counts = {cid: len(v) for cid, v in acks_for(acks.poll()).items()}
    assert all(n == 1 for n in counts.values()), counts
    producer.close()
    acks.close()
