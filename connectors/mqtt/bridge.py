"""The MQTT bridge: ``meters/+/readings`` in, raw readings or dead letters out to Kafka.

It subscribes with QoS 1 in a persistent session (optionally a shared subscription, so
several bridges split the load) and acknowledges each MQTT message only once Kafka has
confirmed the record it produced (manual PUBACK): a crash before that makes the broker
deliver the message again, and a redelivered reading is harmless (readings are unique on
meter and time). A message that is not a valid reading goes to the dead-letter topic
with the reason and its raw bytes, and is acknowledged once that is confirmed. So does a
reading for a meter no live MQTT identity may speak for (``identity:``, see
:mod:`connectors.mqtt.identity`): the broker's ACL should have refused it already.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from connectors.mqtt.client import Broker, make_client, start_client, stop_client
from connectors.mqtt.contract import READINGS_FILTER, meter_of, parse_reading
from connectors.mqtt.identity import Identities
from connectors.publisher import KafkaOut, connector_dead_letter
from contracts.clock import Clock, utc_now
from contracts.errors import PayloadError

log = logging.getLogger(__name__)
STAGE = "mqtt-bridge"



def handle_message(out: KafkaOut, topic: str, payload: bytes, received: datetime,
                   identities: Identities | None = None) -> Any:
    """One MQTT message -> one Kafka record (reading or dead letter); returns its future."""
    try:
        if identities is not None:
            problem = identities.problem(meter_of(topic, "readings"))
            if problem is not None:
                raise PayloadError(f"identity: {problem}")
        reading = parse_reading(topic, payload)
    except PayloadError as exc:
        letter = connector_dead_letter(
            kind="mqtt", where=topic, stage=STAGE, reason=exc.reason, raw=payload,
            at=received, key=topic.encode(),
        )
        log.info("dead letter from %s: %s", topic, exc.reason)
        return out.dead_letter(letter)
    return out.reading(reading)


class MqttBridge:
    def __init__(self, broker: Broker, out: KafkaOut, *, client_id: str = "meterflow-bridge",
                 share_group: str | None = None, clock: Clock = utc_now,
                 identities: Identities | None = None) -> None:
        self.broker = broker
        self.out = out
        self.identities = identities
        self.clock = clock
        self.filter = f"$share/{share_group}/{READINGS_FILTER}" if share_group else READINGS_FILTER
        self.connected = threading.Event()
        self.received = 0
        self._client = make_client(client_id, broker)
        self._client.manual_ack_set(True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused the bridge: %s", self.broker, reason)
            return
        client.subscribe(self.filter, qos=1)
        self.connected.set()
        log.info("bridge subscribed to %s on %s", self.filter, self.broker)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        log.warning("bridge disconnected from %s: %s", self.broker, reason)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        try:
            future = handle_message(self.out, msg.topic, bytes(msg.payload), self.clock(),
                                    self.identities)
        except Exception:  # the producer is closed or broken: leave the message unacknowledged
            log.exception("cannot hand the message from %s to Kafka", msg.topic)
            return
        mid, qos = msg.mid, msg.qos
        if qos == 0:
            return
        future.add_callback(lambda _meta: client.ack(mid, qos))

    def start(self) -> MqttBridge:
        start_client(self._client, self.broker)
        return self

    def stop(self) -> None:
        """Disconnect, then flush Kafka so that every message taken is delivered."""
        stop_client(self._client)
        self.out.flush(timeout=30)
