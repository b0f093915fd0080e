"""Every route of the API x every role x inside and outside the scope: no escalation.

Restricted users (one per role, limited to the inner site; one operator limited to the
inner building) and an admin send each operation of the OpenAPI document once for the
inner site's things and once for the outer site's. Expected, and checked for every one:

* a role without the route's permission is refused (403, ``role``);
* a restricted user reaching outside their scope is refused (403, ``scope``), the refusal
  is in the audit log, and the request changed nothing (no other audit row);
* anything else is not refused (no 401, no 403, no 5xx), and a restricted user's lists
  name nothing of the outer site.

A route missing from ``ROUTES`` fails the test, so a new route cannot skip the matrix.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from meterflow.api.auth import PERMISSIONS

from .api_support import tariff_text
from .conftest import ApiSession
from .scope_support import (
    Actor,
    Side,
    World,
    bill_period,
    group_body,
    item_body,
    make_world,
    uid,
)

pytestmark = pytest.mark.integration


@dataclass
class Case:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Route:
    """How to call one operation for a side; ``permission`` is what the call needs (a
    batch's is its operation's); ``scoped`` False: the same call for both sides (global
    things, or a list without a filter, checked for leaks); ``site_write``: a building's
    user may not change its site."""

    permission: str
    make: Callable[[Side, World, Actor], Case]
    scoped: bool = True
    site_write: bool = False
    own_only: bool = False  # another user's token: refused (token_id) unless admin


def key() -> dict[str, str]:
    return {"Idempotency-Key": uid("k")}


def csv_row(s: Side, w: World) -> str:
    account = uid("IMP")
    return ("account_id,name,room_id,customer_id,customer_name,meters,tariffs,level1,level2,"
            "level3,overdraft,billing_mode,topup\n"
            f"{account},Imported,{s.room},,,{account}-E:electricity:mqtt,{w.tariff},,,,,"
            "prepaid,\n")


def replacement(s: Side) -> dict[str, Any]:
    return {"new_meter_id": s.spare_meter, "at": (datetime.now(UTC) - timedelta(hours=1))
            .isoformat(), "final_reading": "1", "initial_reading": "0"}


def listing(path: str, param: str, attr: str, **extra: str) -> Callable[
        [Side, World, Actor], Case]:
    """A list: unfiltered inside (checked for leaks), filtered by an outer thing outside."""
    def make(s: Side, w: World, a: Actor) -> Case:
        return Case("GET", path, params={**extra, **({param: getattr(s, attr)}
                                                       if s is w.outer else {})})
    return make


R = Route
ROUTES: dict[str, Route] = {
    "PUT /sites/{site_id}": R("property.write", lambda s, w, a: Case(
        "PUT", f"/sites/{s.site}", json={"name": "Park"}), site_write=True),
    "GET /sites/{site_id}": R("read", lambda s, w, a: Case("GET", f"/sites/{s.site}")),
    "DELETE /sites/{site_id}": R("property.write", lambda s, w, a: Case(
        "DELETE", f"/sites/{s.site}"), site_write=True),
    "GET /sites": R("read", lambda s, w, a: Case("GET", "/sites"), scoped=False),
    "PUT /buildings/{building_id}": R("property.write", lambda s, w, a: Case(
        "PUT", f"/buildings/{s.building}", json={"site_id": s.site, "name": "A"})),
    "GET /buildings/{building_id}": R("read", lambda s, w, a: Case(
        "GET", f"/buildings/{s.building}")),
    "DELETE /buildings/{building_id}": R("property.write", lambda s, w, a: Case(
        "DELETE", f"/buildings/{s.building}")),
    "GET /buildings": R("read", listing("/buildings", "site_id", "site")),
    "PUT /floors/{floor_id}": R("property.write", lambda s, w, a: Case(
        "PUT", f"/floors/{s.floor}", json={"building_id": s.building, "level": 3})),
    "GET /floors/{floor_id}": R("read", lambda s, w, a: Case("GET", f"/floors/{s.floor}")),
    "DELETE /floors/{floor_id}": R("property.write", lambda s, w, a: Case(
        "DELETE", f"/floors/{s.floor}")),
    "GET /floors": R("read", listing("/floors", "building_id", "building")),
    "PUT /rooms/{room_id}": R("property.write", lambda s, w, a: Case(
        "PUT", f"/rooms/{s.room}", json={"floor_id": s.floor, "name": "301"})),
    "GET /rooms/{room_id}": R("read", lambda s, w, a: Case("GET", f"/rooms/{s.room}")),
    "DELETE /rooms/{room_id}": R("property.write", lambda s, w, a: Case(
        "DELETE", f"/rooms/{s.room}")),
    "GET /rooms": R("read", listing("/rooms", "floor_id", "floor")),
    "PUT /customers/{customer_id}": R("property.write", lambda s, w, a: Case(
        "PUT", f"/customers/{s.customer}", json={"name": "Li", "phone": "13800000001"})),
    "GET /customers/{customer_id}": R("read", lambda s, w, a: Case(
        "GET", f"/customers/{s.customer}")),
    "DELETE /customers/{customer_id}": R("property.write", lambda s, w, a: Case(
        "DELETE", f"/customers/{s.customer}")),
    "GET /customers": R("read", lambda s, w, a: Case("GET", "/customers"), scoped=False),
    "POST /accounts": R("accounts.write", lambda s, w, a: Case(
        "POST", "/accounts", json=s.account_body)),
    "GET /accounts": R("read", listing("/accounts", "room_id", "room")),
    "GET /accounts/{account_id}": R("read", lambda s, w, a: Case(
        "GET", f"/accounts/{s.account}")),
    "PATCH /accounts/{account_id}": R("accounts.write", lambda s, w, a: Case(
        "PATCH", f"/accounts/{s.account}", json={"name": "Room 301"})),
    "POST /accounts/import": R("accounts.write", lambda s, w, a: Case(
        "POST", "/accounts/import", content=csv_row(s, w),
        headers={"Content-Type": "text/csv"})),
    "POST /meters": R("meters.write", lambda s, w, a: Case("POST", "/meters", json={
        "meter_id": uid("NEW"), "commodity": "electricity", "protocol": "mqtt",
        "room_id": s.room})),
    "GET /meters": R("read", listing("/meters", "account_id", "account")),
    "GET /meters/{meter_id}": R("read", lambda s, w, a: Case("GET", f"/meters/{s.meter}")),
    "PATCH /meters/{meter_id}": R("meters.write", lambda s, w, a: Case(
        "PATCH", f"/meters/{s.meter}", json={"expected_interval_s": 900})),
    "POST /meters/{meter_id}/replace": R("meters.write", lambda s, w, a: Case(
        "POST", f"/meters/{s.meter}/replace", json=replacement(s))),
    "GET /tariffs": R("read", lambda s, w, a: Case("GET", "/tariffs"), scoped=False),
    "POST /tariffs": R("tariffs.write", lambda s, w, a: Case(
        "POST", "/tariffs", content=tariff_text(w.tariff),
        headers={"Content-Type": "application/yaml"}), scoped=False),
    "GET /tariffs/{tariff_id}": R("read", lambda s, w, a: Case("GET", f"/tariffs/{w.tariff}"),
                                  scoped=False),
    "POST /tariffs/{tariff_id}/assignments": R("tariffs.write", lambda s, w, a: Case(
        "POST", f"/tariffs/{w.tariff}/assignments", json={"meter_ids": [s.meter]})),
    "POST /topups": R("topup", lambda s, w, a: Case(
        "POST", "/topups", json={"account_id": s.account, "amount": "1.00"}, headers=key())),
    "POST /refunds": R("refund", lambda s, w, a: Case(
        "POST", "/refunds", json={"account_id": s.account, "amount": "0.01"}, headers=key())),
    "POST /accounts/{account_id}/tenant-links": R("accounts.write", lambda s, w, a: Case(
        "POST", f"/accounts/{s.account}/tenant-links", json={"days": 1})),
    "GET /accounts/{account_id}/tenant-links": R("read", lambda s, w, a: Case(
        "GET", f"/accounts/{s.account}/tenant-links")),
    "POST /accounts/{account_id}/tenant-links/{link_id}/revoke": R(
        "accounts.write", lambda s, w, a: Case(
            "POST", f"/accounts/{s.account}/tenant-links/L0000000000000000/revoke")),
    "GET /payments/{payment_id}": R("read", lambda s, w, a: Case(
        "GET", f"/payments/{s.payment}")),
    "GET /payments": R("read", listing("/payments", "account_id", "account")),
    "POST /accounts/{account_id}/disconnect": R("control", lambda s, w, a: Case(
        "POST", f"/accounts/{s.account}/disconnect", json={"reason": "matrix"},
        headers=key())),
    "POST /meters/{meter_id}/disconnect": R("control", lambda s, w, a: Case(
        "POST", f"/meters/{s.meter}/disconnect", json={"reason": "matrix"}, headers=key())),
    "POST /accounts/{account_id}/reconnect": R("control", lambda s, w, a: Case(
        "POST", f"/accounts/{s.account}/reconnect", json={"reason": "matrix"},
        headers=key())),
    "POST /meters/{meter_id}/reconnect": R("control", lambda s, w, a: Case(
        "POST", f"/meters/{s.meter}/reconnect", json={"reason": "matrix"}, headers=key())),
    "GET /commands/{command_id}": R("read", lambda s, w, a: Case(
        "GET", f"/commands/{s.command}")),
    "GET /commands": R("read", listing("/commands", "meter_id", "meter")),
    "PUT /accounts/{account_id}/keep-supply": R("control", lambda s, w, a: Case(
        "PUT", f"/accounts/{s.account}/keep-supply", json={"manual": False})),
    "PUT /meters/{meter_id}/keep-supply": R("control", lambda s, w, a: Case(
        "PUT", f"/meters/{s.meter}/keep-supply", json={"manual": False})),
    "GET /monitor/rooms": R("read", listing("/monitor/rooms", "site_id", "site")),
    "GET /monitor/meters": R("read", listing("/monitor/meters", "building_id", "building")),
    "POST /batches": R("accounts.write", lambda s, w, a: Case("POST", "/batches", json={
        "operation": "set_thresholds", "account_ids": [s.account],
        "thresholds": ["30", "20", "10"]})),
    "GET /batches": R("read", lambda s, w, a: Case("GET", "/batches"), scoped=False),
    "GET /batches/{batch_id}": R("read", lambda s, w, a: Case("GET", f"/batches/{s.batch}")),
    "POST /batches/{batch_id}/cancel": R("accounts.write", lambda s, w, a: Case(
        "POST", f"/batches/{s.batch}/cancel")),
    "GET /finance/orders": R("finance.read", listing("/finance/orders", "account_id",
                                                     "account")),
    "GET /finance/income": R("finance.read", listing("/finance/income", "account_id",
                                                     "account", period="span")),
    "GET /reports/energy": R("read", lambda s, w, a: Case(
        "GET", "/reports/energy", params={"scope": "building", "id": s.building})),
    "GET /me": R("read", lambda s, w, a: Case("GET", "/me"), scoped=False),
    "GET /users": R("users", lambda s, w, a: Case("GET", "/users"), scoped=False),
    "POST /users": R("users", lambda s, w, a: Case(
        "POST", "/users", json={"name": uid("u"), "role": "viewer"}), scoped=False),
    "PATCH /users/{name}": R("users", lambda s, w, a: Case(
        "PATCH", f"/users/{w.actors[-1].name}", json={"disabled": False}), scoped=False),
    "POST /users/{name}/tokens": R("users", lambda s, w, a: Case(
        "POST", f"/users/{w.actors[-1].name}/tokens", json={"label": "m"}), scoped=False),
    "GET /tokens": R("users", lambda s, w, a: Case("GET", "/tokens"), scoped=False),
    "DELETE /tokens/{token_id}": R("users", lambda s, w, a: Case(
        "DELETE", f"/tokens/{w.victim_token_id}"), scoped=False),
    "POST /tokens/{token_id}/rotate": R("read", lambda s, w, a: Case(
        "POST", f"/tokens/{a.token_id if s is w.inner else w.victim_token_id}/rotate",
        json={"grace_s": 3600}), own_only=True),
    "GET /audit": R("audit.read", lambda s, w, a: Case("GET", "/audit"), scoped=False),
    "GET /notifications": R("read", listing("/notifications", "account_id", "account")),
    "PUT /gateways/{gateway_id}": R("devices.write", lambda s, w, a: Case(
        "PUT", f"/gateways/{s.gateway}", json={"name": "gw", "building_id": s.building})),
    "GET /gateways": R("read", lambda s, w, a: Case("GET", "/gateways"), scoped=False),
    "GET /gateways/{gateway_id}": R("read", lambda s, w, a: Case(
        "GET", f"/gateways/{s.gateway}")),
    "POST /gateways/{gateway_id}/meters": R("devices.write", lambda s, w, a: Case(
        "POST", f"/gateways/{s.gateway}/meters", json={"meter_ids": [s.spare_meter]})),
    "POST /gateways/{gateway_id}/detach": R("devices.write", lambda s, w, a: Case(
        "POST", f"/gateways/{s.gateway}/detach", json={"meter_ids": [s.spare_meter]})),
    "GET /devices/{device_id}/credentials": R("read", lambda s, w, a: Case(
        "GET", f"/devices/{s.meter}/credentials")),
    "POST /devices/{device_id}/credentials": R("devices.write", lambda s, w, a: Case(
        "POST", f"/devices/{s.meter}/credentials")),
    "POST /devices/{device_id}/credentials/rotate": R("devices.write", lambda s, w, a: Case(
        "POST", f"/devices/{s.meter}/credentials/rotate")),
    "DELETE /devices/{device_id}/credentials": R("devices.write", lambda s, w, a: Case(
        "DELETE", f"/devices/{s.meter}/credentials")),
    "PUT /charge-items/{item_id}": R("billing.write", lambda s, w, a: Case(
        "PUT", f"/charge-items/{s.item}", json=item_body(s))),
    "GET /charge-items": R("read", listing("/charge-items", "site_id", "site")),
    "GET /charge-items/{item_id}": R("read", lambda s, w, a: Case(
        "GET", f"/charge-items/{s.item}")),
    "POST /charge-items/{item_id}/run": R("billing.write", lambda s, w, a: Case(
        "POST", f"/charge-items/{s.item}/run")),
    "PUT /apportionments/{group_id}": R("billing.write", lambda s, w, a: Case(
        "PUT", f"/apportionments/{s.group}", json=group_body(s))),
    "GET /apportionments": R("read", listing("/apportionments", "site_id", "site")),
    "GET /apportionments/{group_id}": R("read", lambda s, w, a: Case(
        "GET", f"/apportionments/{s.group}")),
    "POST /apportionments/{group_id}/runs": R("billing.write", lambda s, w, a: Case(
        "POST", f"/apportionments/{s.group}/runs",
        json={"period": bill_period()["start"][:7]})),
    "GET /accounts/{account_id}/apportionment": R("read", lambda s, w, a: Case(
        "GET", f"/accounts/{s.account}/apportionment")),
    "POST /bills/runs": R("billing.write", lambda s, w, a: Case(
        "POST", "/bills/runs", json={**bill_period(), "site_id": s.site})),
    "GET /bills": R("finance.read", listing("/bills", "account_id", "postpaid")),
    "GET /bills/{bill_id}": R("finance.read", lambda s, w, a: Case(
        "GET", f"/bills/{s.bill}")),
    "GET /bills/{bill_id}/print": R("finance.read", lambda s, w, a: Case(
        "GET", f"/bills/{s.bill}/print")),
    "POST /bills/{bill_id}/confirm": R("billing.write", lambda s, w, a: Case(
        "POST", f"/bills/{s.bill}/confirm", json={})),
    "POST /bills/{bill_id}/issue": R("billing.write", lambda s, w, a: Case(
        "POST", f"/bills/{s.bill}/issue")),
    "POST /bills/{bill_id}/void": R("billing.write", lambda s, w, a: Case(
        "POST", f"/bills/{s.bill}/void", json={"reason": "matrix"})),
    "GET /finance/arrears": R("finance.read", listing("/finance/arrears", "account_id",
                                                      "postpaid")),
    "GET /finance/income-by-kind": R("finance.read", listing(
        "/finance/income-by-kind", "account_id", "account")),
    "GET /accounts/{account_id}/activity": R("read", lambda s, w, a: Case(
        "GET", f"/accounts/{s.account}/activity")),
    "GET /alarms": R("read", listing("/alarms", "account_id", "account")),
    "POST /tariffs/check": R("read", lambda s, w, a: Case(
        "POST", "/tariffs/check", content=tariff_text(w.tariff),
        headers={"Content-Type": "application/yaml"}), scoped=False),
    "GET /tariffs/{tariff_id}/outline": R("read", lambda s, w, a: Case(
        "GET", f"/tariffs/{w.tariff}/outline"), scoped=False),
    "POST /tariffs/{tariff_id}/preview": R("read", lambda s, w, a: Case(
        "POST", f"/tariffs/{w.tariff}/preview", json={
            "start": "2026-03-01T08:00:00+08:00", "end": "2026-03-01T09:00:00+08:00",
            "units": "2"}), scoped=False),
    # Drafts hold no place of their own: a restricted user sees only the drafts they made
    # (another's draft is 404, as one that does not exist).
    "POST /account-drafts": R("accounts.write", lambda s, w, a: Case(
        "POST", "/account-drafts", json={"title": "matrix", "body": {"note": "m"}}),
        scoped=False),
    "GET /account-drafts": R("accounts.write", lambda s, w, a: Case("GET", "/account-drafts"),
                             scoped=False),
    "GET /account-drafts/{draft_id}": R("accounts.write", lambda s, w, a: Case(
        "GET", "/account-drafts/999999999"), scoped=False),
    "PUT /account-drafts/{draft_id}": R("accounts.write", lambda s, w, a: Case(
        "PUT", "/account-drafts/999999999", json={"title": "matrix", "body": {}}),
        scoped=False),
    "DELETE /account-drafts/{draft_id}": R("accounts.write", lambda s, w, a: Case(
        "DELETE", "/account-drafts/999999999"), scoped=False),
}
UNAUTHENTICATED = {"GET /health"}


@pytest.fixture(scope="module")
def world(api: ApiSession) -> World:
    return make_world(api)


def operations(api: ApiSession) -> list[str]:
    doc = httpx.get(f"{api.url}/api/v1/openapi.json", timeout=30).json()
    return [f"{method.upper()} {path.removeprefix('/api/v1')}"
            for path, ops in doc["paths"].items() for method in ops]


def test_every_route_is_in_the_matrix(api: ApiSession) -> None:
    listed = set(operations(api))
    assert listed - UNAUTHENTICATED == set(ROUTES), (
        f"missing from the matrix: {sorted(listed - UNAUTHENTICATED - set(ROUTES))}; "
        f"no longer routes: {sorted(set(ROUTES) - listed)}")


def expectation(route: Route, actor: Actor, inside: bool) -> str:
    """role, scope, token or allowed."""
    if actor.role not in PERMISSIONS[route.permission]:
        return "role"
    if route.own_only:
        return "token" if not inside and actor.role != "admin" else "allowed"
    if not actor.limited or not route.scoped:
        return "allowed"
    if not inside or (route.site_write and actor.by_building):
        return "scope"
    return "allowed"


def test_no_route_escalates_any_role_outside_its_scope(
        api: ApiSession, world: World, db: psycopg.Connection) -> None:
    outer_ids = [i for i in world.outer.ids() if i]
    problems: list[str] = []
    counts: dict[str, int] = {}
    for name, route in ROUTES.items():
        for actor in world.actors:
            for inside in (True, False):
                side = world.inner if inside else world.outer
                case = route.make(side, world, actor)
                rid = f"matrix-{uuid.uuid4().hex[:12]}"
                with httpx.Client(base_url=f"{api.url}/api/v1", timeout=60, headers={
                        "Authorization": f"Bearer {actor.token}", "X-Request-Id": rid}) as c:
                    response = c.request(case.method, case.path, params=case.params,
                                         json=case.json, content=case.content,
                                         headers=case.headers)
                wanted = expectation(route, actor, inside)
                counts[wanted] = counts.get(wanted, 0) + 1
                where = f"{name} as {actor.name} ({'in' if inside else 'out'}side)"
                status = response.status_code
                fields = [e.get("field") for e in response.json().get("errors", [])] \
                    if response.headers.get("content-type", "").startswith(
                        "application/json") and status >= 400 else []
                audited = db.execute("SELECT action FROM audit_log WHERE request_id = %s",
                                     (rid,)).fetchall()
                if status >= 500:
                    problems.append(f"{where}: {status} {response.text[:200]}")
                elif wanted == "allowed":
                    if status in (401, 403):
                        problems.append(f"{where}: refused {status} {response.text[:200]}")
                    elif actor.limited and case.method == "GET" and status == 200:
                        leaked = [i for i in outer_ids if i in response.text]
                        if leaked:
                            problems.append(f"{where}: shows the outer site's {leaked}")
                else:
                    field = {"role": "role", "scope": "scope", "token": "token_id"}[wanted]
                    if status != 403 or fields != [field]:
                        problems.append(f"ESCALATION {where}: wanted 403 {field}, got {status} "
                                        f"{response.text[:200]}")
                    changes = [a for (a,) in audited if a != "scope.denied"]
                    if changes:
                        problems.append(f"ESCALATION {where}: refused but audited {changes}")
                    if wanted == "scope" and [a for (a,) in audited] != ["scope.denied"]:
                        problems.append(f"{where}: the refusal is not in the audit log")
    print(f"\nscope matrix: {sum(counts.values())} requests, {len(ROUTES)} routes x "
          f"{len(world.actors)} users x 2 sides: {dict(sorted(counts.items()))}")
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problem(s))"
