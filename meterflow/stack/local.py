"""The local stack as a whole: bring every service up in order, report, tear down."""

from __future__ import annotations

from collections.abc import Callable

from meterflow.settings import Settings
from meterflow.stack.broker_sync import BrokerSync
from meterflow.stack.kafka import Kafka
from meterflow.stack.mosquitto import Mosquitto
from meterflow.stack.postgres import Postgres
from meterflow.stack.process import StackError
from meterflow.stack.service import Service, Status
from meterflow.stack.topics import create_topics


def services(settings: Settings) -> list[Service]:
    return [Postgres(settings), Mosquitto(settings), BrokerSync(settings), Kafka(settings)]


def up(settings: Settings, progress: Callable[[str], None] = lambda _: None) -> list[Status]:
    """Start whatever is not running, wait for health, create database and topics.

    Raises StackError naming the failing service and the log to read.
    """
    for service in services(settings):
        progress(f"starting {service.name} on port {service.port}")
        health = service.start()
        if not health.healthy:
            raise StackError(f"{service.name} did not become healthy: {health.detail}")
        if isinstance(service, Postgres):
            service.ensure_database()
        if isinstance(service, Kafka):
            progress("creating topics")
            create_topics(settings)
    return status(settings)


def down(settings: Settings) -> None:
    for service in reversed(services(settings)):
        service.stop()


def status(settings: Settings) -> list[Status]:
    return [service.status() for service in services(settings)]


def service_named(settings: Settings, name: str) -> Service:
    for service in services(settings):
        if service.name == name:
            return service
    names = ", ".join(s.name for s in services(settings))
    raise StackError(f"unknown service {name!r}; choose one of {names}")
