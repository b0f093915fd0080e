"""Simulated MQTT meters behind one gateway client (one paho client and thread for all).

Every ``interval`` real seconds the gateway publishes each online meter's registers on
``meters/{id}/readings`` (QoS 1). It subscribes to the command topic of each of its meters
(``meters/{id}/commands``, the only ones its MQTT identity may read; a subscription the
broker refuses is asked again every ``RESUBSCRIBE_S``) in a persistent session (commands
published while it is away are kept by the broker until their MQTT 5 expiry) and answers
commands for its meters on ``meters/{id}/acks``: a command is applied once per
``command_id`` (a repeat gets the first answer again), a command past its ``expires_at``
is refused, and a meter set offline does not answer at all. A publish the broker refuses
(MQTT 5 PUBACK "not authorised": the identity may not speak for that meter) is counted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from connectors.mqtt.client import Broker, make_client, start_client, stop_client
from connectors.mqtt.contract import (
    MeterAck,
    meter_of,
    parse_command,
    reading_payload,
    topic,
)
from connectors.simulator.meter import SimMeter
from contracts.errors import PayloadError

log = logging.getLogger(__name__)
RESUBSCRIBE_S = 5.0


class MqttGateway:
    def __init__(self, meters: list[SimMeter], broker: Broker, clock: Callable[[], datetime],
                 *, client_id: str = "meterflow-sim-gateway", interval: float = 5.0,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.wall = wall  # command expiries are real time, whatever the simulated clock says
        self.meters = {m.meter_id: m for m in meters}
        self.broker = broker
        self.clock = clock
        self.interval = interval
        self.connected = threading.Event()
        self.published = 0
        self.refused = 0
        self.commands = 0
        self._subscribing: dict[int, list[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._client = make_client(client_id, broker)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *_a: self.connected.clear()
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker %s refused the simulated gateway: %s", self.broker, reason)
            return
        self._subscribe(sorted(self.meters))
        self.connected.set()

    def _subscribe(self, meter_ids: list[str]) -> None:
        if not meter_ids:
            return
        result, mid = self._client.subscribe([(topic(m, "commands"), 1) for m in meter_ids])
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._subscribing[mid] = meter_ids

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        asked = self._subscribing.pop(mid, [])
        refused = [m for m, reason in zip(asked, reasons, strict=False) if reason.is_failure]
        if refused:
            log.warning("broker %s refused %d command subscription(s) of the gateway (e.g. "
                        "%s); asking again in %.0fs", self.broker, len(refused), refused[0],
                        RESUBSCRIBE_S)
            timer = threading.Timer(RESUBSCRIBE_S, self._subscribe, args=(refused,))
            timer.daemon = True
            timer.start()

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused += 1

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.on_command, msg.topic, bytes(msg.payload))

    def on_command(self, mqtt_topic: str, payload: bytes) -> MeterAck | None:
        """Apply one command message; returns the ack published (None: no answer)."""
        try:
            meter_id = meter_of(mqtt_topic, "commands")
        except PayloadError:
            return None
        meter = self.meters.get(meter_id)
        if meter is None or not meter.online:
            return None
        self.commands += 1
        try:
            command = parse_command(payload)
        except PayloadError as exc:
            log.warning("simulated meter %s got a bad command: %s", meter_id, exc.reason)
            return None
        if command.expires_at is not None and self.wall() > command.expires_at \
                and command.command_id not in meter.applied:
            ack = MeterAck(command.command_id, "failed", "command expired before it arrived")
        else:
            status, detail = meter.apply(command.command_id, command.action, self.clock())
            ack = MeterAck(command.command_id, "applied" if status == "applied" else "failed",
                           detail)
        self._client.publish(topic(meter_id, "acks"), ack.to_json(), qos=1)
        return ack

    def publish_all(self) -> int:
        now = self.clock()
        sent = 0
        for meter in self.meters.values():
            if not meter.online:
                continue
            total, bands = meter.registers(now)
            self._client.publish(topic(meter.meter_id, "readings"),
                                 reading_payload(now, total, water=meter.water, bands=bands),
                                 qos=1)
            sent += 1
        self.published += sent
        return sent

    async def _publishing(self) -> None:
        while True:
            if self.connected.is_set():
                self.publish_all()
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        start_client(self._client, self.broker)
        self._task = asyncio.create_task(self._publishing())

    def disconnect(self) -> None:
        """Go away (the broker keeps commands for the persistent session)."""
        stop_client(self._client)

    def reconnect(self) -> None:
        start_client(self._client, self.broker)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        stop_client(self._client)
