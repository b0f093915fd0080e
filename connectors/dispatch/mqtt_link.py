"""The dispatcher's MQTT side: commands out on ``meters/{id}/commands``, acks back.

Each attempt publishes the command with QoS 1, ``retain=false`` and an MQTT 5 message
expiry at the command's deadline (so a broker never hands a stale command to a meter that
comes back late), then waits for the meter's ``meters/{id}/acks`` message with the same
``command_id``. No ack within the attempt: the dispatcher tries again after its backoff,
publishing the same command again, until the deadline. Meters must therefore treat a
``command_id`` they have already applied as done and acknowledge it again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from connectors.dispatch.policy import Outcome
from connectors.mqtt.client import (
    Broker,
    make_client,
    publish_properties,
    start_client,
    stop_client,
)
from connectors.mqtt.contract import ACKS_FILTER, MeterCommand, meter_of, parse_ack, topic
from connectors.registry import MeterEntry
from contracts.commands import Command
from contracts.errors import PayloadError

log = logging.getLogger(__name__)


class MqttLink:
    def __init__(self, broker: Broker, *, client_id: str = "meterflow-dispatcher") -> None:
        self.broker = broker
        self.connected = threading.Event()
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._lock = threading.Lock()
        self._client = make_client(client_id, broker)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *_a: self.connected.clear()
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused the dispatcher: %s", self.broker, reason)
            return
        client.subscribe(ACKS_FILTER, qos=1)
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            meter_id = meter_of(msg.topic, "acks")
            ack = parse_ack(bytes(msg.payload))
        except PayloadError as exc:
            log.warning("ignoring a bad ack on %s: %s", msg.topic, exc.reason)
            return
        with self._lock:
            waiter = self._waiting.get(ack.command_id)
        if waiter is None:
            log.info("ack for %s from %s with nobody waiting (late or duplicate)",
                     ack.command_id, meter_id)
            return
        loop, future = waiter
        loop.call_soon_threadsafe(_resolve, future, (meter_id, ack))

    def start(self) -> MqttLink:
        start_client(self._client, self.broker)
        return self

    def stop(self) -> None:
        stop_client(self._client)

    async def deliver(self, entry: MeterEntry, command: Command, timeout: float) -> tuple[
            Outcome, str]:
        if not self.connected.is_set():
            return Outcome.UNREACHABLE, f"not connected to the MQTT broker {self.broker}"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._waiting[command.command_id] = (loop, future)
        try:
            left = int((command.deadline - datetime.now(UTC)).total_seconds()) + 1
            payload = MeterCommand(command.command_id, command.action, command.issued_at,
                                   command.deadline).to_json()
            self._client.publish(topic(entry.meter_id, "commands"), payload, qos=1,
                                 retain=False, properties=publish_properties(left))
            try:
                meter_id, ack = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                return Outcome.UNREACHABLE, f"no ack from the meter within {timeout:.1f}s"
        finally:
            with self._lock:
                self._waiting.pop(command.command_id, None)
        if meter_id != entry.meter_id:
            return Outcome.REFUSED, f"ack came from {meter_id}, not {entry.meter_id}"
        if ack.status == "applied":
            return Outcome.APPLIED, ack.detail or "applied by the meter"
        return Outcome.REFUSED, ack.detail or "the meter reported failure"


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
