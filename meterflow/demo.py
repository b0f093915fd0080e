"""`meterflow demo`: a simulated building on every protocol, billed live.

Expects the stack up and the schema migrated (scripts/demo.sh does both). It starts a mixed
simulated fleet (Modbus, DL/T 645, CJ/T 188, MQTT), registers every meter, opens one account
per room with a tariff for its use (residential tiers, commercial time of use, tiered
water), tops each account up through the payment outbox (a few only a little, so they run
out during the demo), then starts the worker, the outbox relay, the MQTT bridge, the
pollers and the command dispatcher, and shows the rooms live. The simulated MQTT meters sit
behind one gateway registered for the run, which connects with its own credentials (made
here, written to ``<state>/demo/gateway.json``, mode 0600) and may speak for its meters
only. A top-up from a second terminal (`meterflow topup ACCOUNT AMOUNT --key KEY`)
reconnects a disconnected room. The operators' API runs too, with the web console at
``/console``; the demo makes the console user ``demo-admin`` with a new password each run
and prints both.
Every process logs to ``<state>/logs/demo-<name>.log``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from connectors.registry import MeterEntry, load_fleet, upsert_db
from meterflow.api import audit
from meterflow.api.sessions import set_password
from meterflow.api.tokens import Actor, add_user
from meterflow.settings import Settings
from meterflow.stack.process import pid_alive, spawn, terminate
from pipeline.billing import WalletConfig, load_tariff_text
from services.accounts.spec import AccountSpec, MeterSpec, TariffSpec
from services.accounts.store import open_account
from services.devices import credentials, gateways
from services.payments.store import record_payment

EXAMPLES = Path(__file__).resolve().parents[1] / "pipeline" / "billing" / "examples"
TARIFF_FOR = {  # profile -> example tariff file
    "residential": "bj-residential-electricity.yaml",
    "shop": "gd-commercial-tou.yaml",
    "office": "gd-commercial-tou.yaml",
    "water": "bj-residential-water.yaml",
}
LOW_EVERY = 8  # one room in eight starts nearly empty and is cut off during the demo


SITE = "demo-park"


def room_of(index: int) -> str:
    """Building A-D, 6 floors, 10 rooms a floor: A-1-0101 ..."""
    building = "ABCD"[index // 60 % 4]
    floor = index // 10 % 6 + 1
    return f"{building}-{floor}-{floor:02d}{index % 10 + 1:02d}"


def furnish(conn: psycopg.Connection, rooms: list[str]) -> None:
    """The demo park's site, buildings, floors and rooms (kept across runs)."""
    conn.execute("INSERT INTO sites (site_id, name) VALUES (%s, 'Demo industrial park') "
                 "ON CONFLICT DO NOTHING", (SITE,))
    for room in rooms:
        building, floor, _ = room.split("-")
        conn.execute("INSERT INTO buildings (building_id, site_id, name) VALUES (%s, %s, %s) "
                     "ON CONFLICT DO NOTHING", (f"{SITE}-{building}", SITE, f"Building {building}"))
        conn.execute("INSERT INTO floors (floor_id, building_id, level, name) "
                     "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                     (f"{SITE}-{building}-{floor}", f"{SITE}-{building}", int(floor),
                      f"Floor {floor}"))
        conn.execute("INSERT INTO rooms (room_id, floor_id, name, area_m2) "
                     "VALUES (%s, %s, %s, 36.5) ON CONFLICT DO NOTHING",
                     (f"{SITE}-{room}", f"{SITE}-{building}-{floor}", room))


def retire_previous(conn: psycopg.Connection, prefix: str) -> int:
    """Meters of an earlier demo run leave their rooms (their accounts keep their ledgers)."""
    return conn.execute(
        "UPDATE meters SET removed_at = now() WHERE removed_at IS NULL AND room_id IN "
        "(SELECT room_id FROM rooms r JOIN floors f USING (floor_id) JOIN buildings b "
        "USING (building_id) WHERE b.site_id = %s) AND meter_id NOT LIKE %s",
        (SITE, f"{prefix}%")).rowcount


def open_rooms(conn: psycopg.Connection, entries: list[MeterEntry], prefix: str) -> list[str]:
    """One account per room and commodity, named after the run (``<prefix><room>-E``), so a
    new run starts from fresh balances; a few start nearly empty."""
    tariffs: dict[str, TariffSpec] = {}
    for name in set(TARIFF_FOR.values()):
        body = (EXAMPLES / name).read_text()
        parsed = load_tariff_text(body, name)
        tariffs[name] = TariffSpec(parsed.id, parsed.commodity, parsed.valid_from, body)
    furnish(conn, [room_of(index) for index in range(len(entries))])
    accounts = []
    for index, entry in enumerate(entries):
        room = room_of(index)
        account = f"{prefix}{room}-{entry.commodity[0].upper()}"
        tariff = tariffs[TARIFF_FOR.get(entry.profile or "", TARIFF_FOR["residential"]
                                        if entry.commodity == "electricity" else
                                        TARIFF_FOR["water"])]
        spec = AccountSpec(account, f"Room {room} ({entry.profile or entry.commodity})",
                           (MeterSpec(entry.meter_id, entry.commodity, entry.protocol,
                                      entry.address),), (tariff,), WalletConfig())
        open_account(conn, spec)
        conn.execute("UPDATE accounts SET room_id = %s WHERE account_id = %s",
                     (f"{SITE}-{room}", account))
        conn.execute("UPDATE meters SET room_id = %s WHERE meter_id = %s",
                     (f"{SITE}-{room}", entry.meter_id))
        opening = 60 if index % LOW_EVERY == 0 else 20000 + 500 * (index % 17)
        record_payment(conn, account, "topup", opening, f"{account}-opening",
                       operator="demo", note="opening balance")
        accounts.append(account)
    retire_previous(conn, prefix)
    return accounts


GATEWAY_NAME = "demo MQTT gateway"


def provision_gateway(conn: psycopg.Connection, gateway_id: str, file: Path) -> None:
    """Register the run's gateway with a new credential (written to ``file``, 0600) and
    revoke those of earlier runs' gateways."""
    with conn.transaction():
        for (old,) in conn.execute(
                "SELECT gateway_id FROM mqtt_gateways WHERE name = %s AND gateway_id <> %s",
                (GATEWAY_NAME, gateway_id)).fetchall():
            device = credentials.Device("gateway", str(old))
            if credentials.live(conn, device) is not None:
                credentials.revoke(conn, device, "demo")
        gateways.put_gateway(conn, gateway_id, GATEWAY_NAME, None)
        issued = credentials.create(conn, credentials.Device("gateway", gateway_id), "demo")
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(issued.as_dict()) + "\n")


def _view(conn: psycopg.Connection, accounts: list[str]) -> Group:
    rows = conn.execute("""
        SELECT account_id, room_name, meter_id, protocol, balance_fen, alarm_level, supply,
               online, last_reading_at, today_units, today_yuan
        FROM meter_status WHERE account_id = ANY(%s)
        ORDER BY coalesce(balance_fen, 0), account_id""", (accounts,)).fetchall()
    table = Table(title="Rooms (lowest balance first)", expand=False)
    for column in ("room", "account", "meter", "protocol", "state", "balance ¥", "alarm",
                   "supply", "today units", "today ¥"):
        table.add_column(column)
    counts = {"online": 0, "offline": 0, "disconnected": 0, "alarm": 0}
    for account, room, meter, protocol, fen, level, supply, online, last, units, money in rows:
        state = ("online" if online else "offline") if last else "waiting"
        counts["online" if state == "online" else "offline"] += state != "waiting"
        counts["disconnected"] += supply == "disconnected"
        counts["alarm"] += bool(level)
        if len(table.rows) >= 25:
            continue
        table.add_row(
            room, account, meter, protocol,
            f"[green]{state}[/]" if state == "online" else f"[yellow]{state}[/]",
            _yuan(fen),
            f"[red]L{level}[/]" if level else "-",
            f"[red]{supply}[/]" if supply == "disconnected" else (supply or "-"),
            f"{units:.2f}", f"{money:.2f}",
        )
    summary = (f"{len(rows)} rooms: {counts['online']} online, {counts['offline']} offline, "
               f"{counts['alarm']} in alarm, {counts['disconnected']} disconnected  "
               f"({datetime.now(UTC).astimezone().strftime('%H:%M:%S')})")
    return Group(table, summary)


def _yuan(fen: int | None) -> str:
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


DEMO_USER = "demo-admin"


def console_sign_in(conn: psycopg.Connection) -> str:
    """The demo's console user (an admin) with a new password; returns the password."""
    password = secrets.token_urlsafe(12)
    with conn.transaction():
        user_id, created = add_user(conn, DEMO_USER, "admin")
        set_password(conn, DEMO_USER, password)
        audit.record(conn, Actor(None, "demo", "admin"), f"demo:{uuid.uuid4()}",
                     "user.password", f"user:{DEMO_USER}", None,
                     {"user_id": user_id, "created": created})
    return password


def console_url(settings: Settings) -> str:
    scheme = "https" if settings.api_tls_cert_file else "http"
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"{scheme}://{host}:{settings.api_port}/console"


def run_demo(settings: Settings, meters: int, speed: float, seconds: float,
             console: Console) -> None:
    state = settings.state_dir.resolve()
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    fleet_file = state / "demo" / "fleet.yaml"
    fleet_file.parent.mkdir(parents=True, exist_ok=True)
    fleet_file.unlink(missing_ok=True)
    me = [sys.executable, "-m", "meterflow.cli"]
    env = {"METERFLOW_STATE_DIR": str(state)}
    pids: dict[str, int] = {}

    def start(name: str, *args: str) -> None:
        pids[name] = spawn([*me, *args], log_file=state / "logs" / f"demo-{name}.log",
                           pid_file=state / "run" / f"demo-{name}.pid", cwd=state.parent,
                           env=env)

    try:
        prefix = f"D{run[-6:]}-"
        gateway_id = f"{prefix}gateway"
        gateway_file = fleet_file.parent / "gateway.json"
        with psycopg.connect(settings.dsn, autocommit=True) as conn:
            provision_gateway(conn, gateway_id, gateway_file)
        start("fleet", "simulate", "fleet", "--meters", str(meters), "--speed", str(speed),
              "--fleet-file", str(fleet_file), "--mqtt-interval", "5", "--prefix", prefix,
              "--credentials", str(gateway_file))
        deadline = time.monotonic() + 60
        with console.status("starting the simulated fleet"):
            while not fleet_file.exists():
                if time.monotonic() > deadline or not pid_alive(pids["fleet"]):
                    raise RuntimeError(f"the fleet did not start; read {state}/logs/demo-fleet.log")
                time.sleep(0.3)
        entries = list(load_fleet(fleet_file))
        with psycopg.connect(settings.dsn, autocommit=True) as conn:
            upsert_db(conn, entries)
            with conn.transaction():
                gateways.attach(conn, gateway_id,
                                [e.meter_id for e in entries if e.protocol == "mqtt"])
            accounts = open_rooms(conn, entries, prefix)
            console.print(f"{len(entries)} meters registered, {len(accounts)} rooms opened")
            start("worker", "worker")
            start("relay", "relay")
            start("bridge", "connect", "mqtt")
            for protocol in ("modbus", "dlt645", "cjt188"):
                start(f"poll-{protocol}", "connect", "poll", protocol, "--interval", "5")
            start("dispatch", "dispatch")
            start("api", "api")
            password = console_sign_in(conn)
            console.print(f"web console: {console_url(settings)} (sign in as {DEMO_USER}, "
                          f"password {password})", soft_wrap=True)
            console.print(f"processes started; logs in {state / 'logs'}/demo-*.log. "
                          "Top up from another terminal, e.g. "
                          f"`meterflow topup {accounts[0]} 50 --key my-first-topup`")
            end = time.monotonic() + seconds if seconds else None
            with Live(_view(conn, accounts), console=console, refresh_per_second=1) as live:
                while end is None or time.monotonic() < end:
                    time.sleep(2)
                    live.update(_view(conn, accounts))
    except KeyboardInterrupt:
        pass
    finally:
        for pid in reversed(list(pids.values())):
            terminate(pid, grace_s=15)
        console.print("demo stopped; the stack keeps running (`meterflow stack down`)")
