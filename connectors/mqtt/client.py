"""paho-mqtt clients as MeterFlow uses them: MQTT 5, credentials, persistent sessions.

Persistent sessions (``clean_start=False`` with a session expiry) let the broker keep QoS 1
messages for a client that is away: the bridge does not lose readings while it restarts,
and a meter or gateway gets the commands published while it was offline. paho runs its
network loop in one thread per client (``loop_start``); callbacks run on that thread.

With TLS the client verifies the broker's certificate chain against the given CA bundle
(or the system's) and its name against the host it connects to (RFC 6125); a broker it
cannot verify is refused, never used unverified.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEFAULT_SESSION_EXPIRY_S = 24 * 3600


@dataclass(frozen=True)
class TlsClient:
    """TLS to the broker: the CA bundle to trust (None: the system's)."""

    ca_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    user: str | None = None
    password: str | None = None
    keepalive: int = 30
    tls: TlsClient | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}{' (TLS)' if self.tls else ''}"

    def __repr__(self) -> str:  # never the password
        return f"Broker({self}, user={self.user!r})"


def make_client(client_id: str, broker: Broker) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if broker.user is not None:
        client.username_pw_set(broker.user, broker.password)
    if broker.tls is not None:
        client.tls_set_context(broker.tls.context())
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def start_client(client: mqtt.Client, broker: Broker, *, persistent: bool = True,
          session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S) -> None:
    """Connect and start the network loop's thread, which finishes the handshake and
    reconnects after a loss."""
    props = Properties(PacketTypes.CONNECT)
    if persistent:
        props.SessionExpiryInterval = session_expiry_s
    client.connect_async(broker.host, broker.port, keepalive=broker.keepalive,
                         clean_start=not persistent, properties=props)
    client.loop_start()


def stop_client(client: mqtt.Client) -> None:
    """Disconnect, then end the network loop's thread."""
    client.disconnect()
    client.loop_stop()


def publish_properties(expiry_s: int | None) -> Properties | None:
    """PUBLISH properties with a message expiry: the broker drops the message after it."""
    if expiry_s is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = max(1, expiry_s)
    return props
