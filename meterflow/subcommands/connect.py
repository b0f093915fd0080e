"""``meterflow simulate | connect | dispatch``: simulators, pollers, the MQTT bridge and the
command dispatcher from the command line (thin: settings in, long-running loops out).

    meterflow simulate fleet --meters 200 --mix modbus=1,dlt645=1,cjt188=1,mqtt=1 \\
        --speed 3600 --fleet-file fleet.yaml --credentials gateway.json
    meterflow connect mqtt
    meterflow connect modbus|dlt645|cjt188 --fleet-file fleet.yaml --interval 60
    meterflow dispatch [--fleet-file fleet.yaml]      # default registry: the meters table
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import yaml

from connectors.mqtt.client import Broker
from connectors.mqtt.identity import Identities, MeterIdentity
from connectors.mqtt.identity import load_db as load_identities
from connectors.registry import PROTOCOLS, Registry, load_db, load_fleet
from meterflow.broker.platform import MissingSecret, Role, broker_for, device_broker
from meterflow.settings import Settings
from meterflow.subcommands import settings_of
from runtime.health import Heartbeat, Probe, serve_health
from runtime.retry import Doubling

if TYPE_CHECKING:
    from connectors.dispatch.dispatcher import Dispatcher
    from connectors.polling.framed import CycleStats

simulate_app = typer.Typer(help="Simulated meters for demos, tests and benchmarks.",
                           no_args_is_help=True)
connect_app = typer.Typer(help="Read meters and publish their readings to Kafka.",
                          no_args_is_help=True)
FleetOpt = typer.Option(None, "--fleet-file", help="fleet YAML (default: the meters table)")


def _broker(settings: Settings, role: Role) -> Broker:
    """The platform's identity of this process (docs/operations.md#security)."""
    try:
        return broker_for(settings, role)
    except MissingSecret as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _gateway_broker(settings: Settings, credentials: Path | None) -> tuple[Broker, str | None]:
    """A simulated gateway is a device: it connects with its own credentials (the JSON of
    `meterflow device credentials create GATEWAY --output FILE`); returns the broker and
    the gateway's id (its user name)."""
    if credentials is None:
        if settings.mqtt_user:  # a broker managed elsewhere, one user for all
            return _broker(settings, "bridge"), None
        raise typer.BadParameter("MQTT meters need their gateway's credentials: --credentials "
                                 "FILE (meterflow device credentials create GATEWAY --output "
                                 "FILE)")
    try:
        body = json.loads(credentials.read_text())
        user, password = str(body["username"]), str(body["password"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise typer.BadParameter(f"--credentials {credentials}: not a credentials file "
                                 f"({exc})") from None
    return device_broker(settings, user, password), user


def _identities(settings: Settings) -> Identities | None:
    """The bridge's view of which meters a live MQTT identity may speak for (None when
    METERFLOW_MQTT_IDENTITY_CHECK is off); read once before the bridge subscribes."""
    if not settings.mqtt_identity_check:
        return None
    import psycopg

    held: list[psycopg.Connection] = []

    def load() -> dict[str, MeterIdentity]:
        try:
            if not held or held[0].closed:
                held[:] = [psycopg.connect(settings.dsn, autocommit=True, connect_timeout=5)]
            return load_identities(held[0])
        except psycopg.Error:
            if held:
                held[0].close()
            raise

    identities = Identities(load)
    delay = Doubling(first_s=1.0)
    while True:
        try:
            identities.refresh()
            return identities
        except psycopg.Error as exc:
            wait = delay.failed()
            logging.getLogger(__name__).warning(
                "waiting for the database (MQTT identities): %s; retrying in %.0fs",
                str(exc).strip(), wait)
            time.sleep(wait)


def _registry(settings: Settings, fleet_file: Path | None) -> Registry:
    if fleet_file is not None:
        return load_fleet(fleet_file)
    import psycopg

    with psycopg.connect(settings.dsn) as conn:
        return load_db(conn)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _serve_health(settings: Settings, service: str, probe: Probe) -> ThreadingHTTPServer | None:
    """GET /health on METERFLOW_HEALTH_PORT (none when it is 0, the default)."""
    return serve_health(settings.health_port, service, probe, host=settings.health_host)


def _stop_health(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


async def _until_signal() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@simulate_app.command("fleet")
def simulate_fleet(
    ctx: typer.Context,
    meters: int = typer.Option(20, "--meters", min=1, max=10_000),
    mix: str = typer.Option("modbus=1,dlt645=1,cjt188=1,mqtt=1", "--mix",
                            help="protocol weights, e.g. modbus=2,mqtt=1"),
    spec_file: Path | None = typer.Option(None, "--spec", help="fleet spec YAML (overrides)"),
    seed: int = typer.Option(1, "--seed"),
    speed: float = typer.Option(1.0, "--speed", help="simulated seconds per real second"),
    prefix: str = typer.Option("", "--prefix", help="put before every meter id"),
    fleet_file: Path = typer.Option(Path("fleet.yaml"), "--fleet-file"),
    host: str = typer.Option("127.0.0.1", "--host", help="address the buses listen on"),
    mqtt_interval: float = typer.Option(10.0, "--mqtt-interval", min=0.1),
    seconds: float = typer.Option(0.0, "--seconds", help="stop after N s (0: until Ctrl-C)"),
    credentials: Path | None = typer.Option(
        None, "--credentials", help="the MQTT gateway's credentials file (JSON with username "
        "and password); its user name is the gateway id"),
) -> None:
    """Start a mixed fleet (Modbus TCP, DL/T 645 and CJ/T 188 buses, an MQTT gateway)."""
    from connectors.simulator.fleet import Fleet
    from connectors.simulator.spec import SpecError, mix_spec

    _logging(False)
    settings = settings_of(ctx)
    try:
        spec = yaml.safe_load(spec_file.read_text()) if spec_file else mix_spec(meters, mix, seed)
    except SpecError as exc:
        raise typer.BadParameter(str(exc)) from None
    spec.setdefault("speed", speed)
    spec.setdefault("prefix", prefix)
    has_mqtt = any(g.get("protocol") == "mqtt" and g.get("count") for g in spec["groups"])

    broker, gateway_id = _gateway_broker(settings, credentials) if has_mqtt else (None, None)

    async def run() -> None:
        fleet = Fleet(spec, broker=broker, host=host, mqtt_interval=mqtt_interval,
                      gateway_id=gateway_id or "meterflow-sim-gateway")
        await fleet.start()
        fleet.write(fleet_file)
        typer.echo(f"{len(fleet.meters)} simulated meters up; fleet file: {fleet_file}")
        stop = await _until_signal()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds or None)
        await fleet.stop()

    asyncio.run(run())


@connect_app.command("mqtt")
def connect_mqtt(
    ctx: typer.Context,
    client_id: str = typer.Option("meterflow-bridge", "--client-id"),
    share_group: str | None = typer.Option(None, "--share-group",
                                           help="MQTT 5 shared subscription group"),
) -> None:
    """Bridge meters/+/readings to the raw-readings topic (bad input: dead letters)."""
    from connectors.mqtt.bridge import MqttBridge
    from connectors.publisher import KafkaOut

    _logging(False)
    settings = settings_of(ctx)
    out = KafkaOut.connect(settings.bootstrap_servers)
    identities = _identities(settings)
    bridge = MqttBridge(_broker(settings, "bridge"), out, client_id=client_id,
                        share_group=share_group, identities=identities)

    def probe() -> dict[str, object]:
        counters = out.counters
        body: dict[str, object] = {
            "mqtt_connected": bridge.connected.is_set(), "received": bridge.received,
            "readings": counters.readings, "dead_letters": counters.dead_letters,
            "failed_deliveries": counters.failed}
        if not bridge.connected.is_set():
            body["status"] = "disconnected"
        return body

    async def run() -> None:
        stop = await _until_signal()
        bridge.start()
        await stop.wait()

    health = _serve_health(settings, "connect-mqtt", probe)
    try:
        asyncio.run(run())
    finally:
        bridge.stop()
        out.close()
        _stop_health(health)


@connect_app.command("poll")
def connect_poll(
    ctx: typer.Context,
    protocol: str = typer.Argument(..., help="modbus, dlt645 or cjt188"),
    fleet_file: Path | None = FleetOpt,
    interval: float = typer.Option(60.0, "--interval", min=0.1),
    cycles: int = typer.Option(0, "--cycles", min=0, help="stop after N cycles (0: never)"),
    timeout: float = typer.Option(2.0, "--timeout", min=0.05),
) -> None:
    """Poll every meter of PROTOCOL in the registry and publish RawReadings."""
    from connectors.polling.framed import FramePoller
    from connectors.polling.loop import run_periodic
    from connectors.polling.modbus import ModbusLoop
    from connectors.polling.protocols import FRAME_PROTOCOLS
    from connectors.publisher import KafkaOut

    if protocol not in PROTOCOLS or protocol == "mqtt":
        raise typer.BadParameter("protocol must be modbus, dlt645 or cjt188")
    _logging(False)
    settings = settings_of(ctx)
    entries = [e for e in _registry(settings, fleet_file) if e.protocol == protocol]
    out = KafkaOut.connect(settings.bootstrap_servers)
    # stale when no cycle finished for three intervals (at least five minutes)
    heartbeat = Heartbeat(max_age_s=max(3 * interval, 300.0))

    def beating(cycle: Callable[[], Awaitable[CycleStats]]) -> Callable[[], Awaitable[CycleStats]]:
        async def run_cycle() -> CycleStats:
            stats = await cycle()
            heartbeat.beat()
            return stats
        return run_cycle

    def probe() -> dict[str, object]:
        return {**heartbeat.report(), "protocol": protocol, "meters": len(entries),
                "readings": out.counters.readings, "dead_letters": out.counters.dead_letters}

    async def run() -> None:
        stop = await _until_signal()
        if protocol == "modbus":
            loop = ModbusLoop(out, timeout=timeout)
            await run_periodic(beating(lambda: loop.cycle(entries)), interval, stop,
                               cycles=cycles)
            loop.close()
        else:
            poller = FramePoller(FRAME_PROTOCOLS[protocol], out, timeout=timeout)
            await run_periodic(beating(lambda: poller.cycle(entries)), interval, stop,
                               cycles=cycles)
            await poller.buses.close()

    typer.echo(f"polling {len(entries)} {protocol} meter(s) every {interval}s")
    health = _serve_health(settings, f"poll-{protocol}", probe)
    try:
        asyncio.run(run())
    finally:
        out.close()
        _stop_health(health)


def _poll_alias(protocol: str) -> None:
    def command(ctx: typer.Context, fleet_file: Path | None = FleetOpt,
                interval: float = typer.Option(60.0, "--interval", min=0.1),
                cycles: int = typer.Option(0, "--cycles", min=0),
                timeout: float = typer.Option(2.0, "--timeout", min=0.05)) -> None:
        connect_poll(ctx, protocol, fleet_file, interval, cycles, timeout)

    command.__doc__ = f"Poll the {protocol} meters of the registry (same as `poll {protocol}`)."
    connect_app.command(protocol)(command)


for _protocol in ("modbus", "dlt645", "cjt188"):
    _poll_alias(_protocol)


def dispatch(
    ctx: typer.Context,
    fleet_file: Path | None = FleetOpt,
    group: str = typer.Option("meterflow-dispatcher", "--group", help="Kafka consumer group"),
    client_id: str = typer.Option("meterflow-dispatcher", "--client-id", help="MQTT client id"),
) -> None:
    """Deliver commands from meterflow.commands to meters; ack each on .commands.acks."""
    from connectors.dispatch.delivery import Deliverers
    from connectors.dispatch.dispatcher import Dispatcher
    from connectors.dispatch.kafka_io import CommandFeed, load_finished
    from connectors.dispatch.mqtt_link import MqttLink
    from connectors.publisher import KafkaOut
    from runtime.consumer import Record

    _logging(False)
    settings = settings_of(ctx)
    finished = load_finished(settings.bootstrap_servers)
    typer.echo(f"{len(finished)} finished command(s) read back from the acks topic")
    out = KafkaOut.connect(settings.bootstrap_servers)
    link = MqttLink(_broker(settings, "dispatcher"), client_id=client_id).start()
    feed = CommandFeed(settings.bootstrap_servers, group=group)

    running: list[Dispatcher] = []

    def probe() -> dict[str, object]:
        body: dict[str, object] = {
            "mqtt_connected": link.connected.is_set(), "command_feed": feed.alive,
            "in_flight": running[0].busy if running else 0,
            "acks_failed": out.counters.failed}
        if not feed.alive:
            body["status"] = "command feed stopped"
        elif not link.connected.is_set():
            body["status"] = "disconnected"
        return body

    async def run() -> None:
        stop = await _until_signal()
        queue: asyncio.Queue[Record] = asyncio.Queue()
        dispatcher = Dispatcher(lambda: _registry(settings, fleet_file), Deliverers(mqtt=link),
                                out, finished=finished, on_commit=feed.commit)
        running.append(dispatcher)
        feed.start(asyncio.get_running_loop(), queue)
        await dispatcher.run(queue, stop)

    health = _serve_health(settings, "dispatch", probe)
    try:
        asyncio.run(run())
    finally:
        feed.stop()
        link.stop()
        out.close()
        _stop_health(health)
