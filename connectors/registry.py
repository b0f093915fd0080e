"""The meter registry: how each meter is reached (protocol, endpoint, address, model).

Two sources with one shape: the ``meters`` table (columns ``endpoint`` and ``control``
from ``sql/0002_meter_endpoints.sql``, ``address`` and ``model`` from 0001) and a fleet
file (YAML) written by ``meterflow simulate fleet`` or by hand::

    fleet: 1
    mqtt: {host: 127.0.0.1, port: 11883}        # informative; credentials never stored
    meters:
      - meter_id: SIM-DL-0001
        commodity: electricity                 # or water
        protocol: dlt645                       # modbus | dlt645 | cjt188 | mqtt
        endpoint: tcp://127.0.0.1:40645        # rtu+tcp://... for Modbus RTU over TCP
        address: "000000000001"                # Modbus unit id, DL/T 645 12 / CJ/T 188 14 digits
        model: ""                              # Modbus register map name
        control: {password: "000000"}          # protocol settings for relay/valve commands
        profile: residential                   # simulators only
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

Protocol = Literal["modbus", "dlt645", "cjt188", "mqtt"]
PROTOCOLS: tuple[Protocol, ...] = ("modbus", "dlt645", "cjt188", "mqtt")
SCHEMES = ("tcp", "rtu+tcp", "mqtt")


class RegistryError(ValueError):
    """A registry entry that cannot be used; the message names the meter and the field."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise RegistryError(f"endpoint {url!r}: scheme must be one of {', '.join(SCHEMES)}")
    try:
        port = parts.port
    except ValueError as exc:
        raise RegistryError(f"endpoint {url!r}: {exc}") from None
    if not parts.hostname or port is None:
        raise RegistryError(f"endpoint {url!r}: expected {parts.scheme}://host:port")
    return Endpoint(parts.scheme, parts.hostname, port)


@dataclass(frozen=True)
class MeterEntry:
    meter_id: str
    commodity: Literal["electricity", "water"]
    protocol: Protocol
    endpoint: str = ""
    address: str = ""
    model: str = ""
    control: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    profile: str = ""

    @property
    def unit(self) -> str:
        return "m3" if self.commodity == "water" else "kWh"

    def tcp(self) -> Endpoint:
        if not self.endpoint:
            raise RegistryError(f"meter {self.meter_id}: no endpoint")
        return parse_endpoint(self.endpoint)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "meter_id": self.meter_id, "commodity": self.commodity, "protocol": self.protocol,
            "endpoint": self.endpoint, "address": self.address, "model": self.model,
            "control": dict(self.control),
        }
        if self.profile:
            out["profile"] = self.profile
        return out

    @classmethod
    def from_dict(cls, body: dict[str, Any], where: str = "") -> MeterEntry:
        meter_id = str(body.get("meter_id", ""))
        label = f"{where}meter {meter_id or '?'}"
        if not meter_id:
            raise RegistryError(f"{label}: field meter_id missing")
        protocol = body.get("protocol")
        if protocol not in PROTOCOLS:
            raise RegistryError(f"{label}: field protocol must be one of {', '.join(PROTOCOLS)}")
        commodity = body.get("commodity", "electricity")
        if commodity not in ("electricity", "water"):
            raise RegistryError(f"{label}: field commodity must be electricity or water")
        endpoint = str(body.get("endpoint") or "")
        if endpoint:
            try:
                parse_endpoint(endpoint)
            except RegistryError as exc:
                raise RegistryError(f"{label}: field endpoint: {exc}") from None
        elif protocol != "mqtt":
            raise RegistryError(f"{label}: field endpoint missing (needed for {protocol})")
        control = body.get("control") or {}
        if not isinstance(control, dict):
            raise RegistryError(f"{label}: field control must be a mapping")
        return cls(meter_id, commodity, protocol, endpoint, str(body.get("address") or ""),
                   str(body.get("model") or ""), dict(control), str(body.get("profile") or ""))


class Registry:
    """Meters by id; ``problems`` holds the meters whose entry cannot be used, and why."""

    def __init__(self, entries: Iterable[MeterEntry] = (),
                 problems: dict[str, str] | None = None) -> None:
        self._by_id = {entry.meter_id: entry for entry in entries}
        self.problems = dict(problems or {})

    def get(self, meter_id: str) -> MeterEntry | None:
        return self._by_id.get(meter_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Any:
        return iter(self._by_id.values())

    def by_protocol(self, protocol: Protocol) -> list[MeterEntry]:
        return [e for e in self._by_id.values() if e.protocol == protocol]


def read_fleet(path: Path) -> dict[str, Any]:
    body = yaml.safe_load(path.read_text())
    if not isinstance(body, dict) or not isinstance(body.get("meters"), list):
        raise RegistryError(f"{path}: not a fleet file (expected a mapping with 'meters')")
    return body


def load_fleet(path: Path) -> Registry:
    body = read_fleet(path)
    return Registry(MeterEntry.from_dict(m, f"{path}: ") for m in body["meters"])


def write_fleet(path: Path, entries: Iterable[MeterEntry], **header: Any) -> None:
    body = {"fleet": 1, **header, "meters": [e.to_dict() for e in entries]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(body, sort_keys=False, width=120))
    tmp.replace(path)


SELECT_METERS = (
    "SELECT meter_id, commodity, protocol, endpoint, address, model, control FROM meters"
)


def load_db(conn: Any) -> Registry:
    """Every meter of the ``meters`` table (a psycopg connection); rows that cannot be used
    (for example a DL/T 645 meter without an endpoint) are listed in ``problems``."""
    entries = []
    problems: dict[str, str] = {}
    for meter_id, commodity, protocol, endpoint, address, model, control in conn.execute(
        SELECT_METERS
    ).fetchall():
        body = {"meter_id": meter_id, "commodity": commodity, "protocol": protocol,
                "endpoint": endpoint, "address": address, "model": model,
                "control": control if isinstance(control, dict) else json.loads(control or "{}")}
        try:
            entries.append(MeterEntry.from_dict(body, "meters table: "))
        except RegistryError as exc:
            problems[meter_id] = str(exc)
    return Registry(entries, problems)


UPSERT_METER = """
INSERT INTO meters (meter_id, commodity, protocol, endpoint, address, model, control)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (meter_id) DO UPDATE SET commodity = EXCLUDED.commodity,
  protocol = EXCLUDED.protocol, endpoint = EXCLUDED.endpoint, address = EXCLUDED.address,
  model = EXCLUDED.model, control = EXCLUDED.control
"""


def upsert_db(conn: Any, entries: Iterable[MeterEntry]) -> int:
    rows = [(e.meter_id, e.commodity, e.protocol, e.endpoint, e.address, e.model,
             json.dumps(e.control)) for e in entries]
    with conn.cursor() as cur:
        cur.executemany(UPSERT_METER, rows)
    return len(rows)
