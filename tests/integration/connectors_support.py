"""Helpers of the connector integration tests: topic tails, a dispatcher in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition

from connectors.dispatch.delivery import Deliverers
from connectors.dispatch.dispatcher import Dispatcher
from connectors.dispatch.kafka_io import CommandFeed, load_finished
from connectors.dispatch.mqtt_link import MqttLink
from connectors.dispatch.policy import RetryPolicy
from connectors.mqtt.client import Broker
from connectors.publisher import KafkaOut
from connectors.registry import Registry, load_db, upsert_db
from connectors.simulator.fleet import Fleet, FleetThread
from meterflow.broker.platform import Role, broker_for, device_broker
from meterflow.broker.sync import wait_applied
from meterflow.settings import Settings
from runtime.consumer import Record
from services.devices import credentials, gateways


def broker_of(settings: Settings, role: Role = "bridge") -> Broker:
    """The broker as a platform process of ``role`` reaches it (its own user)."""
    return broker_for(settings, role)


def gateway_credentials(db: psycopg.Connection, gateway_id: str) -> str:
    """Register a gateway with a new credential; returns its password."""
    with db.transaction():
        gateways.put_gateway(db, gateway_id, "test gateway", None)
        return credentials.create(db, credentials.Device("gateway", gateway_id),
                                  "tests").password


def provisioned_fleet(settings: Settings, db: psycopg.Connection, spec: dict[str, Any],
                      gateway_id: str, **options: Any) -> Fleet:
    """A simulated fleet whose MQTT meters sit behind a gateway with its own credentials:
    registered, and in force at the broker, before the gateway connects."""
    password = gateway_credentials(db, gateway_id)
    fleet = Fleet(spec, broker=device_broker(settings, gateway_id, password),
                  gateway_id=gateway_id, **options)
    mqtt = [e for e in fleet.entries() if e.protocol == "mqtt"]
    upsert_db(db, mqtt)
    with db.transaction():
        gateways.attach(db, gateway_id, [e.meter_id for e in mqtt])
    assert wait_applied(db) is not None, "no broker sync is running"
    return fleet


def run_id() -> str:
    return f"T{uuid.uuid4().hex[:6]}-"


class TopicTail:
    """Reads a topic from its end at creation time: only what the test produced."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                      group_id=None, enable_auto_commit=False)
        parts = self.consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        for tp in tps:
            self.consumer.position(tp)
        self.records: list[Any] = []

    def poll(self) -> list[Any]:
        for batch in self.consumer.poll(timeout_ms=200).values():
            self.records.extend(batch)
        return self.records

    def until(self, done: Callable[[list[Any]], bool], timeout_s: float, what: str) -> list[Any]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if done(self.poll()):
                return self.records
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; "
                             f"got {len(self.records)} record(s)")

    def close(self) -> None:
        self.consumer.close()


class DispatcherThread:
    """The real dispatcher (Kafka feed, deliverers, MQTT link) on its own loop."""

    def __init__(self, settings: Settings, registry: Callable[[], Registry],
                 policy: RetryPolicy, client_id: str) -> None:
        self.out = KafkaOut.connect(settings.bootstrap_servers)
        self.link = MqttLink(broker_of(settings, "dispatcher"), client_id=client_id).start()
        self.feed = CommandFeed(settings.bootstrap_servers, group=f"{client_id}-group",
                                from_beginning=False)
        finished = load_finished(settings.bootstrap_servers)
        self.dispatcher = Dispatcher(registry, Deliverers(mqtt=self.link), self.out,
                                     policy=policy, finished=finished,
                                     on_commit=self.feed.commit)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="dispatcher")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self.stop_event = asyncio.Event()
        queue: asyncio.Queue[Record] = asyncio.Queue()
        self.feed.start(asyncio.get_running_loop(), queue)
        await self.dispatcher.run(queue, self.stop_event)

    def start(self) -> DispatcherThread:
        self.thread.start()
        assert self.feed.ready.wait(30), "command feed not ready"
        assert self.link.connected.wait(15), "dispatcher not connected to MQTT"
        return self

    def stop(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)
        self.feed.stop()
        self.link.stop()
        self.out.close(timeout=10)


def fleet_and_dispatcher(settings: Settings, db: psycopg.Connection, spec: dict[str, Any],
                         prefix: str, policy: RetryPolicy, mqtt_interval: float
                         ) -> tuple[FleetThread, DispatcherThread]:
    """A running simulated fleet (MQTT meters behind their gateway, every meter in the
    meters table) and a dispatcher reading the registry from the database."""
    fleet = FleetThread(provisioned_fleet(settings, db, spec, f"{prefix}gateway",
                                          mqtt_interval=mqtt_interval)).start()
    assert fleet.fleet.gateway is not None and fleet.fleet.gateway.connected.wait(15)
    upsert_db(db, fleet.fleet.entries())

    def registry() -> Registry:
        with psycopg.connect(settings.dsn) as conn:
            return load_db(conn)

    return fleet, DispatcherThread(settings, registry, policy, f"{prefix}dispatcher").start()
