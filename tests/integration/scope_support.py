"""Two sites for the scope tests: everything an operator can touch, once inside the scope of
the restricted users and once outside it, made through the API by an admin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from .api_support import tariff_text
from .conftest import ApiSession

ROLES = ("admin", "operator", "finance", "maintenance", "viewer")


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Side:
    """One site's things (ids)."""

    site: str
    building: str
    floor: str
    room: str
    customer: str
    account: str
    meter: str
    spare_meter: str
    gateway: str
    payment: str = ""
    command: str = ""
    batch: str = ""
    account_body: dict[str, Any] = field(default_factory=dict)
    item: str = ""
    group: str = ""
    postpaid: str = ""
    bill: str = ""

    def ids(self) -> list[str]:
        return [self.site, self.building, self.floor, self.room, self.customer, self.account,
                self.meter, self.spare_meter, self.gateway, self.payment, self.command,
                self.batch, self.item, self.group, self.postpaid, self.bill]


@dataclass(frozen=True)
class Actor:
    """A user of the tests: a role, limited (to the inner site or building) or not."""

    name: str
    role: str
    token: str
    token_id: str
    limited: bool
    by_building: bool = False


def ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in statuses, (response.request.method, response.request.url,
                                              response.status_code, response.text)
    return response.json()


def make_side(admin: Any, tariff: str, tag: str) -> Side:
    side = Side(site=uid(f"{tag}site"), building=uid(f"{tag}bld"), floor=uid(f"{tag}fl"),
                room=uid(f"{tag}room"), customer=uid(f"{tag}cust"), account=uid(f"{tag}ACC"),
                meter=uid(f"{tag}M"), spare_meter=uid(f"{tag}SP"),
                gateway=uid(f"{tag}gw").replace(":", ""))
    ok(admin.put(f"/sites/{side.site}", json={"name": tag}), 201)
    ok(admin.put(f"/buildings/{side.building}", json={"site_id": side.site, "name": "A"}), 201)
    ok(admin.put(f"/floors/{side.floor}", json={"building_id": side.building, "level": 3}), 201)
    ok(admin.put(f"/rooms/{side.room}", json={"floor_id": side.floor, "name": "301"}), 201)
    ok(admin.put(f"/customers/{side.customer}", json={"name": "Li", "phone": "13800000001"}),
       201)
    side.account_body = {
        "account_id": side.account, "name": "Room 301", "room_id": side.room,
        "customer_id": side.customer, "tariffs": [tariff], "thresholds": ["30", "20", "10"],
        "meters": [{"meter_id": side.meter, "commodity": "electricity", "protocol": "mqtt"}]}
    ok(admin.post("/accounts", json=side.account_body), 201)
    ok(admin.post("/meters", json={"meter_id": side.spare_meter, "commodity": "electricity",
                                   "protocol": "mqtt", "room_id": side.room}), 201)
    ok(admin.put(f"/gateways/{side.gateway}", json={"name": "gw",
                                                    "building_id": side.building}), 201)
    side.payment = ok(admin.post("/topups", json={"account_id": side.account, "amount": "50"},
                                 headers={"Idempotency-Key": uid("pay")}), 201)["payment_id"]
    side.command = ok(admin.post(f"/meters/{side.meter}/disconnect", json={"reason": "t"}),
                      201)["commands"][0]["command_id"]
    side.batch = ok(admin.post("/batches", json={
        "operation": "set_thresholds", "account_ids": [side.account],
        "thresholds": ["30", "20", "10"]}), 201)["batch_id"]
    property_billing(admin, side)
    return side


def item_body(side: Side) -> dict[str, Any]:
    return {"site_id": side.site, "name": "Property fee", "basis": "fixed", "amount": "10",
            "frequency": "monthly", "start_date": "2026-01-01",
            "targets": [{"kind": "account", "id": side.account}]}


def group_body(side: Side) -> dict[str, Any]:
    return {"site_id": side.site, "name": "Corridor", "master_meter_id": side.meter,
            "method": "equal", "start_date": "2026-01-01",
            "members": [{"account_id": side.account}]}


def bill_period() -> dict[str, str]:
    today = datetime.now(UTC).date()
    first = date(today.year, today.month, 1)
    start = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    return {"start": start.isoformat(), "end": first.isoformat()}


def property_billing(admin: Any, side: Side) -> None:
    """A charge item, an apportionment group, a postpaid account and its draft bill."""
    side.item, side.group = uid(f"{side.site[:2]}item"), uid(f"{side.site[:2]}grp")
    ok(admin.put(f"/charge-items/{side.item}", json=item_body(side)), 201)
    ok(admin.put(f"/apportionments/{side.group}", json=group_body(side)), 201)
    side.postpaid = uid(f"{side.site[:2]}PP")
    ok(admin.post("/accounts", json={"account_id": side.postpaid, "name": "Office",
                                     "room_id": side.room, "billing_mode": "postpaid"}), 201)
    made = ok(admin.post("/bills/runs", json={**bill_period(),
                                              "account_ids": [side.postpaid]}), 201)
    side.bill = made["bills"][0]


@dataclass
class World:
    inner: Side
    outer: Side
    tariff: str
    actors: list[Actor]
    victim_token_id: str


def make_world(api: ApiSession) -> World:
    """Both sides, and a user per role limited to the inner site (admins are never
    limited), plus an operator limited to the inner building."""
    with api.client("admin") as admin:
        tariff = uid("scopetar").replace(":", "")
        ok(admin.post("/tariffs", content=tariff_text(tariff),
                      headers={"Content-Type": "application/yaml"}), 201)
        inner, outer = make_side(admin, tariff, "in"), make_side(admin, tariff, "out")
        admin_name = uid("admin")
        ok(admin.post("/users", json={"name": admin_name, "role": "admin"}), 201)
        made = ok(admin.post(f"/users/{admin_name}/tokens", json={}), 201)
        actors = [Actor(admin_name, "admin", made["token"], made["token_id"], False)]
        for role in ROLES[1:]:
            actors.append(limited_user(admin, role, sites=[inner.site]))
        actors.append(limited_user(admin, "operator", buildings=[inner.building]))
        victim = uid("victim")
        ok(admin.post("/users", json={"name": victim, "role": "viewer"}), 201)
        victim_token = ok(admin.post(f"/users/{victim}/tokens", json={}), 201)["token_id"]
    return World(inner, outer, tariff, actors, victim_token)


def limited_user(admin: Any, role: str, sites: list[str] | None = None,
                 buildings: list[str] | None = None) -> Actor:
    name = uid(f"{role}-{'b' if buildings else 's'}")
    made = ok(admin.post("/users", json={"name": name, "role": role, "sites": sites or [],
                                         "buildings": buildings or []}), 201)
    assert made["scope"]["restricted"] is True
    token = ok(admin.post(f"/users/{name}/tokens", json={"label": "scope tests"}), 201)
    return Actor(name, role, token["token"], token["token_id"], True, bool(buildings))
