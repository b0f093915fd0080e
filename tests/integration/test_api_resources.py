"""The operators' API over a real socket on the real stack: every resource, roles, audit.

A real `meterflow api` process (fixture ``api``) talks to the session's PostgreSQL; the
tests use httpx as any client would.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from meterflow.settings import Settings
from meterflow.stack.process import terminate

from .api_support import fields, open_account, tariff_text, uid
from .conftest import API_PORT, REPO, ApiSession, env_of, wait_for

pytestmark = pytest.mark.integration


def test_health_needs_no_token_and_everything_else_does(api: ApiSession) -> None:
    with api.client(None) as anonymous:
        health = anonymous.get("/health")
        assert health.status_code == 200 and health.json()["database"] == "reachable"
        refused = anonymous.get("/accounts")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    with api.client(None, Authorization="Bearer mf_0123456789abcdef_" + "x" * 43) as forged:
        assert forged.get("/accounts").status_code == 401


def test_property_tree_and_room_area(api: ApiSession, property_ids: dict[str, str]) -> None:
    with api.client("viewer") as c:
        room = c.get(f"/rooms/{property_ids['room']}").json()
        assert room["area_m2"] == "35.50" and room["floor_id"] == property_ids["floor"]
        listed = c.get("/floors", params={"building_id": property_ids["building"]}).json()
        assert [f["floor_id"] for f in listed["items"]] == [property_ids["floor"]]
        assert c.put(f"/sites/{uid('s')}", json={}).status_code == 403
    with api.client("operator") as c:
        bad = c.put(f"/rooms/{uid('r')}", json={"floor_id": uid("nofloor")})
        assert bad.status_code == 404 and fields(bad) == ["floor_id"]
        area = c.put(f"/rooms/{uid('r')}", json={"floor_id": property_ids["floor"],
                                                 "area_m2": 35.5})
        assert area.status_code == 422 and fields(area) == ["area_m2"]
        in_use = c.delete(f"/floors/{property_ids['floor']}")
        assert in_use.status_code == 409
        customer = c.put(f"/customers/{uid('c')}", json={"name": "Li", "phone": "12345"})
        assert customer.status_code == 201 and customer.json()["language"] == "zh"
        assert c.put(f"/customers/{uid('c')}", json={"email": "nope"}).status_code == 422


def test_tariff_upload_versions_and_invalid_field(api: ApiSession, tariff_id: str) -> None:
    with api.client() as admin:
        again = admin.post("/tariffs", content=tariff_text(tariff_id),
                           headers={"Content-Type": "application/yaml"})
        assert again.status_code == 200
        other = admin.post("/tariffs", content=tariff_text(tariff_id).replace("0.4883", "0.5"),
                           headers={"Content-Type": "application/yaml"})
        assert other.status_code == 409 and fields(other) == ["valid_from"]
        bad = admin.post("/tariffs", json={"id": "x1", "commodity": "electricity",
                                           "unit": "kWh", "currency": "CNY",
                                           "timezone": "Asia/Shanghai", "price": "-1"})
        assert bad.status_code == 422 and fields(bad) == ["price"], bad.text
        as_json = admin.post("/tariffs", json={
            "id": uid("js").replace(":", ""), "commodity": "water", "unit": "m3",
            "currency": "CNY", "timezone": "Asia/Shanghai", "price": "5.00"})
        assert as_json.status_code == 201 and as_json.json()["kind"] == "flat"
        versions = admin.get(f"/tariffs/{tariff_id}").json()["versions"]
        assert [v["valid_from"] for v in versions] == ["2012-07-01"]
    with api.client("operator") as operator:
        assert operator.post("/tariffs", content=tariff_text(uid("t")),
                             headers={"Content-Type": "application/yaml"}).status_code == 403


def test_open_account_show_patch_and_audit(api: ApiSession, tariff_id: str,
                                           property_ids: dict[str, str]) -> None:
    account, meter = open_account(api, tariff_id, property_ids["room"])
    with api.client("operator") as c:
        shown = c.get(f"/accounts/{account}").json()
        assert shown["balance"] == "0.00" and shown["overdraft"] == "5.00"
        assert shown["thresholds"] == ["30.00", "20.00", "10.00"]
        assert shown["meters"] == [{"meter_id": meter, "commodity": "electricity",
                                    "protocol": "mqtt", "tariff_id": tariff_id}]
        same = c.post("/accounts", json={
            "account_id": account, "name": "Room 301", "room_id": property_ids["room"],
            "meters": [{"meter_id": meter, "commodity": "electricity", "protocol": "mqtt"}],
            "tariffs": [tariff_id], "thresholds": ["30", "20", "10"], "overdraft": "5"})
        assert same.status_code == 200
        other = c.post("/accounts", json={"account_id": account, "name": "Room 302"})
        assert other.status_code == 409 and fields(other) == ["name"]
        unknown = c.post("/accounts", json={"account_id": uid("A"), "tariffs": ["no-such"]})
        assert unknown.status_code == 404 and fields(unknown) == ["tariffs"]
        money = c.post("/accounts", json={"account_id": uid("A"), "overdraft": 5})
        assert money.status_code == 422 and fields(money) == ["overdraft"]
        assert "decimal string" in money.json()["errors"][0]["reason"]
        patched = c.patch(f"/accounts/{account}", json={"thresholds": ["40", "20", "5.5"]})
        assert patched.status_code == 200 and patched.json()["thresholds"][2] == "5.50"
        wrong = c.patch(f"/accounts/{account}", json={"thresholds": ["1", "2", "3"]})
        assert wrong.status_code == 400 and fields(wrong) == ["thresholds"]
        listed = c.get("/accounts", params={"room_id": property_ids["room"]}).json()["items"]
        assert [a["account_id"] for a in listed] == [account]
    with api.client("viewer") as viewer:
        assert viewer.patch(f"/accounts/{account}", json={"name": "x"}).status_code == 403
        assert viewer.get("/audit").status_code == 403
    with api.client() as admin:
        trail = admin.get("/audit", params={"target": f"account:{account}"}).json()["items"]
        assert [t["action"] for t in trail] == ["account.update", "account.open"]
        assert trail[0]["before"]["thresholds_fen"] == [3000, 2000, 1000]
        assert trail[0]["after"]["thresholds_fen"] == [4000, 2000, 550]
        assert trail[0]["user_name"].startswith("operator-") and trail[0]["role"] == "operator"


def test_audit_log_cannot_be_edited_by_anyone(api: ApiSession, db: psycopg.Connection) -> None:
    assert db.execute("SELECT count(*) FROM audit_log").fetchone()[0] > 0
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                      "TRUNCATE audit_log"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            db.execute(statement)


def test_topup_idempotency_and_roles(api: ApiSession, tariff_id: str,
                                     db: psycopg.Connection) -> None:
    account, _ = open_account(api, tariff_id)
    key = uid("key")
    body = {"account_id": account, "amount": "100.50", "note": "cash"}
    with api.client("finance", **{"Idempotency-Key": key}) as c:
        first = c.post("/topups", json=body)
        assert first.status_code == 201, first.text
        assert first.json()["amount"] == "100.50" and first.json()["amount_fen"] == 10050
        again = c.post("/topups", json=body)
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["payment_id"] == first.json()["payment_id"]
        other = c.post("/topups", json={**body, "amount": "100.51"})
        assert other.status_code == 409 and fields(other) == ["Idempotency-Key"]
    assert db.execute("SELECT count(*) FROM payments WHERE idempotency_key = %s",
                      (key,)).fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM outbox WHERE payload->>'idempotency_key' = %s",
                      (key,)).fetchone()[0] == 1
    for role in ("viewer", "maintenance"):
        with api.client(role, **{"Idempotency-Key": uid("k")}) as c:
            assert c.post("/topups", json=body).status_code == 403
            assert c.post("/refunds", json=body).status_code == 403
    with api.client("operator", **{"Idempotency-Key": uid("k")}) as c:
        assert c.post("/refunds", json=body).status_code == 403
    with api.client("finance") as c:
        missing = c.post("/topups", json=body)
        assert missing.status_code == 422 and fields(missing) == ["Idempotency-Key"]
    with api.client("finance", **{"Idempotency-Key": uid("k")}) as c:
        for amount in ("1.234", "-1", "0", "1e3", "abc"):
            bad = c.post("/topups", json={**body, "amount": amount})
            assert bad.status_code == 422 and fields(bad) == ["amount"], (amount, bad.text)
        number = c.post("/topups", json={**body, "amount": 100.5})
        assert number.status_code == 422 and "JSON number" in number.text
        ghost = c.post("/topups", json={**body, "account_id": uid("nobody")})
        assert ghost.status_code == 404 and fields(ghost) == ["account_id"]
        shown = c.get(f"/payments/{first.json()['payment_id']}").json()
        assert shown["status"] in ("pending", "published", "applied")


def test_refund_above_the_balance_is_refused(api: ApiSession, tariff_id: str) -> None:
    account, _ = open_account(api, tariff_id)
    with api.client("finance", **{"Idempotency-Key": uid("k")}) as c:
        refused = c.post("/refunds", json={"account_id": account, "amount": "1.00"})
        assert refused.status_code == 409 and fields(refused) == ["amount"]


def test_meters_register_patch_unknown_and_replace(api: ApiSession, tariff_id: str,
                                                   db: psycopg.Connection) -> None:
    account, meter = open_account(api, tariff_id)
    with api.client("maintenance") as c:
        new = uid("M")
        made = c.post("/meters", json={"meter_id": new, "commodity": "electricity",
                                       "protocol": "dlt645", "address": "000000000001",
                                       "multiplier": "40", "tariff_id": tariff_id})
        assert made.status_code == 201 and made.json()["multiplier"] == "40.0000"
        assert c.post("/meters", json={"meter_id": new, "commodity": "electricity",
                                       "protocol": "dlt645", "address": "000000000001",
                                       "multiplier": "40", "tariff_id": tariff_id}
                      ).status_code == 200
        clash = c.post("/meters", json={"meter_id": new, "commodity": "water",
                                        "protocol": "dlt645"})
        assert clash.status_code == 409 and fields(clash) == ["commodity"]
        wrong = c.post("/meters", json={"meter_id": uid("M"), "commodity": "water",
                                        "protocol": "cjt188", "tariff_id": tariff_id})
        assert wrong.status_code == 400 and fields(wrong) == ["tariff_id"]
        unknown = c.patch(f"/meters/{uid('nometer')}", json={"model": "x"})
        assert unknown.status_code == 404 and fields(unknown) == ["meter_id"]
        patched = c.patch(f"/meters/{new}", json={"account_id": account})
        assert patched.status_code == 200 and patched.json()["account_id"] == account
        at = datetime.now(UTC) - timedelta(minutes=1)
        swapped = c.post(f"/meters/{meter}/replace", json={
            "new_meter_id": f"{meter}-2", "at": at.isoformat(), "final_reading": "120.5",
            "initial_reading": "0"})
        assert swapped.status_code == 201, swapped.text
        shown = c.get(f"/meters/{meter}-2").json()
        assert shown["account_id"] == account and shown["tariff_in_force"] == tariff_id
        assert shown["replacement"]["final_reading"] == "120.500"
        assert c.post("/topups", json={}).status_code == 403
    # The old meter stays configured for the workers until its final reading is rated.
    snapshot = workers_config(db)
    assert snapshot.meters[meter].removed is False
    assert snapshot.meters[f"{meter}-2"].tariff_id == tariff_id
    raw = db.execute("SELECT key, payload->>'value' FROM outbox WHERE topic = "
                     "'meterflow.readings.raw' AND key = ANY(%s) ORDER BY key",
                     ([meter, f"{meter}-2"],)).fetchall()
    assert raw == [(meter, "120.5"), (f"{meter}-2", "0")]


def workers_config(db: psycopg.Connection) -> Any:
    """What a worker's configuration reload reads now (pipeline/config_source.py)."""
    from pipeline.config_source import load

    with psycopg.connect(db.info.dsn + " password=meterflow", autocommit=True) as conn:
        return load(conn)


def test_health_is_503_while_the_database_is_unreachable(stack: Settings,
                                                         tmp_path: Path) -> None:
    env = {**env_of(stack), "METERFLOW_API_PORT": str(API_PORT + 1),
           "METERFLOW_PG_PORT": str(API_PORT + 2)}  # nothing listens there
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "meterflow.cli", "api"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=REPO)
    try:
        def answer() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{API_PORT + 1}/api/v1/health", timeout=10)
            except httpx.HTTPError:
                return None

        response = wait_for(answer, 60, "the API to answer")
        assert response.status_code == 503, response.text
        assert response.json()["database"] == "unreachable"
    finally:
        terminate(proc.pid, grace_s=10)


def test_future_tariff_assignment_changes_nothing_before_its_moment(
        api: ApiSession, tariff_id: str, db: psycopg.Connection) -> None:
    account, meter = open_account(api, tariff_id)
    other = uid("tar2").replace(":", "")
    with api.client() as admin:
        assert admin.post("/tariffs", content=tariff_text(other),
                          headers={"Content-Type": "application/yaml"}).status_code == 201
        later = datetime.now(UTC) + timedelta(days=30)
        made = admin.post(f"/tariffs/{other}/assignments",
                          json={"account_id": account, "effective_from": later.isoformat()})
        assert made.status_code == 201, made.text
        water = admin.post(f"/tariffs/{uid('w').replace(':', '')}/assignments",
                           json={"meter_ids": [meter]})
        assert water.status_code == 404 and fields(water) == ["tariff_id"]

    def tariff_in_workers() -> str | None:
        return workers_config(db).meters[meter].tariff_id

    assert tariff_in_workers() == tariff_id
    with api.client() as admin:
        shown = admin.get(f"/meters/{meter}").json()
        assert shown["tariff_in_force"] == tariff_id
        assert [a["scheduled"] for a in shown["assignments"]] == [True]
        now = admin.post(f"/tariffs/{other}/assignments", json={"meter_ids": [meter]})
        assert now.status_code == 201
    assert tariff_in_workers() == other
