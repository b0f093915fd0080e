"""The operators' API: CSV opening, control, keep-supply, monitoring, finance, reports,
users and tokens, over a real socket on the real stack."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import psycopg
import pytest

from .api_support import fields, open_account, uid
from .conftest import ApiSession

pytestmark = pytest.mark.integration
HEADER = "account_id,name,room_id,customer_id,customer_name,meters,tariffs,level1,level2,level3,"\
         "overdraft,billing_mode,topup\n"


def test_csv_opens_a_floor_at_once_or_nothing(api: ApiSession, tariff_id: str,
                                              property_ids: dict[str, str],
                                              db: psycopg.Connection) -> None:
    room = property_ids["room"]
    run = uid("F")
    lines = [f"{run}-{n},Room {n},{room},{run}-C{n},Tenant {n},{run}-{n}-E:electricity:dlt645:"
             f"00000000000{n},{tariff_id},50,20,10,0,prepaid,{'30.50' if n == 1 else ''}"
             for n in (1, 2, 3)]
    good = HEADER + "\n".join(lines) + "\n"
    with api.client("operator", **{"Content-Type": "text/csv"}) as c:
        broken = good + f"{run}-4,x,,,,{run}-4-E:gas:mqtt,{tariff_id},1,2,3,0,prepaid,1.234\n"
        refused = c.post("/accounts/import", content=broken)
        assert refused.status_code == 422
        assert set(fields(refused)) == {"row 5.meters"}, refused.text
        assert db.execute("SELECT count(*) FROM accounts WHERE account_id LIKE %s",
                          (f"{run}-%",)).fetchone()[0] == 0
        opened = c.post("/accounts/import", content=good)
        assert opened.status_code == 200, opened.text
        assert opened.json()["opened"] == [f"{run}-1", f"{run}-2", f"{run}-3"]
        assert [t["amount"] for t in opened.json()["topups"]] == ["30.50"]
        again = c.post("/accounts/import", content=good).json()
        assert again["opened"] == [] and again["topups"][0]["replayed"] is True
        bad_money = c.post("/accounts/import", content=HEADER + f"{run}-9,,,,,{run}-9-E:"
                           f"water:mqtt,,,,,0,prepaid,1.234\n")
        assert fields(bad_money) == ["row 2.amount"], bad_money.text
    assert db.execute("SELECT count(*) FROM payments WHERE account_id LIKE %s",
                      (f"{run}-%",)).fetchone()[0] == 1
    assert db.execute("SELECT room_id FROM meters WHERE meter_id = %s",
                      (f"{run}-2-E",)).fetchone()[0] == room


def test_disconnect_reconnect_commands_and_keep_supply(api: ApiSession, tariff_id: str,
                                                       db: psycopg.Connection) -> None:
    account, meter = open_account(api, tariff_id)
    key = uid("ctl")
    with api.client("maintenance", **{"Idempotency-Key": key}) as c:
        cut = c.post(f"/accounts/{account}/disconnect", json={"reason": "inspection"})
        assert cut.status_code == 201, cut.text
        [command] = cut.json()["commands"]
        assert command["meter_id"] == meter and command["action"] == "disconnect"
        again = c.post(f"/accounts/{account}/disconnect", json={"reason": "inspection"})
        assert again.status_code == 200 and again.json()["commands"] == [command]
        shown = c.get(f"/commands/{command['command_id']}").json()
        assert shown["status"] in ("pending", "sent") and shown["acks"] == []
        assert c.post(f"/meters/{uid('M')}/reconnect").status_code == 404
        back = c.post(f"/meters/{meter}/reconnect", headers={"Idempotency-Key": uid("k")})
        assert back.status_code == 201 and back.json()["commands"][0]["action"] == "reconnect"
        keep = c.put(f"/accounts/{account}/keep-supply",
                     json={"manual": True, "night": "22:00-06:00"})
        assert keep.status_code == 200 and keep.json()["keep_supply"]["manual"] is True
        bad = c.put(f"/accounts/{account}/keep-supply", json={"night": "25:00-06:00"})
        assert bad.status_code == 422 and fields(bad) == ["night"]
    payload = db.execute("SELECT payload FROM outbox WHERE topic = 'meterflow.commands' AND "
                         "payload->>'command_id' = %s", (command["command_id"],)).fetchall()
    assert len(payload) == 1 and payload[0][0]["deadline"] > payload[0][0]["issued_at"]
    # The acknowledgement as the sink lands it, shown with the command.
    db.execute("INSERT INTO command_acks (command_id, at, meter_id, status, detail, attempts) "
               "VALUES (%s, now(), %s, 'applied', 'relay tripped', 1)",
               (command["command_id"], meter))
    with api.client("viewer") as c:
        shown = c.get(f"/commands/{command['command_id']}").json()
        assert shown["status"] == "applied" and shown["acks"][0]["detail"] == "relay tripped"
        assert c.post(f"/accounts/{account}/disconnect").status_code == 403


def test_room_monitor_filters(api: ApiSession, tariff_id: str, property_ids: dict[str, str],
                              db: psycopg.Connection) -> None:
    account, _ = open_account(api, tariff_id, property_ids["room"])
    db.execute("INSERT INTO balances (account_id, balance_fen, alarm_level, supply, seq, "
               "updated_at) VALUES (%s, 1234, 2, 'disconnected', 1, now())", (account,))
    with api.client("viewer") as c:
        found = c.get("/monitor/rooms", params={"building_id": property_ids["building"]}).json()
        assert found["total"] == 1
        [room] = found["items"]
        assert room["room_id"] == property_ids["room"] and room["balance"] == "12.34"
        assert room["supply"] == "disconnected" and room["alarm_level"] == 2
        assert room["floor_level"] == 3 and room["today_yuan"] == "0.00"
        assert c.get("/monitor/rooms", params={"building_id": property_ids["building"],
                                               "supply": "connected"}).json()["total"] == 0
        bad = c.get("/monitor/rooms", params={"alarm_level": 4})
        assert bad.status_code == 422 and fields(bad) == ["alarm_level"]


def test_finance_orders_income_and_exports(api: ApiSession, tariff_id: str,
                                           db: psycopg.Connection) -> None:
    account, meter = open_account(api, tariff_id)
    for amount in ("100.00", "20.05"):
        with api.client("finance", **{"Idempotency-Key": uid("k")}) as c:
            assert c.post("/topups", json={"account_id": account, "amount": amount}
                          ).status_code == 201
    db.execute("INSERT INTO ledger (entry_id, account_id, seq, at, kind, amount_fen, "
               "balance_fen, meter_id, ref) VALUES (%s, %s, 1, now(), 'charge', -333, 0, %s, "
               "'c1')", (uid("entry"), account, meter))
    with api.client("finance") as c:
        orders = c.get("/finance/orders", params={"account_id": account}).json()["items"]
        assert sorted(o["amount"] for o in orders) == ["-3.33", "100.00", "20.05"]
        topups = c.get("/finance/orders", params={"account_id": account, "kind": "topup"})
        assert len(topups.json()["items"]) == 2
        income = c.get("/finance/income", params={"account_id": account, "period": "month"})
        totals = income.json()["totals"]
        assert totals["topups"] == "120.05" and totals["charges"] == "3.33"
        assert totals["net_fen"] == 12005
        csv = c.get("/finance/orders", params={"account_id": account, "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        frame = pd.read_csv(io.StringIO(csv.text), dtype=str)
        assert sorted(frame["amount"]) == ["-3.33", "100.00", "20.05"]
        xlsx = c.get("/finance/income", params={"account_id": account, "format": "xlsx",
                                                "period": "year"})
        sheet = pd.read_excel(io.BytesIO(xlsx.content), dtype=str)
        assert list(sheet["topups"]) == ["120.05"] and list(sheet["topups_fen"]) == ["12005"]
        bad = c.get("/finance/income", params={"from": "2026-02-30"})
        assert bad.status_code == 422 and fields(bad) == ["from"]
    with api.client("maintenance") as c:
        assert c.get("/finance/orders").status_code == 403


def test_energy_report_by_band_and_year_over_year(api: ApiSession, tariff_id: str,
                                                  property_ids: dict[str, str],
                                                  db: psycopg.Connection) -> None:
    account, meter = open_account(api, tariff_id, property_ids["room"])
    day = date(2025, 3, 10)
    rollup = [(day, "peak", "10.5", "5.25"), (day, "valley", "4", "1.00"),
              (day + timedelta(days=1), "peak", "1", "0.5"),
              (date(2024, 3, 10), "peak", "5", "2.5")]
    for bucket, band, units, amount in rollup:
        db.execute("INSERT INTO usage_daily (meter_id, bucket, band, units, amount_yuan) "
                   "VALUES (%s, %s, %s, %s, %s)",
                   (meter, bucket, band, Decimal(units), Decimal(amount)))
    with api.client("viewer") as c:
        report = c.get("/reports/energy", params={
            "scope": "building", "id": property_ids["building"], "period": "month",
            "from": "2025-03-01", "to": "2025-03-31", "compare": "yoy"}).json()
        assert report["items"] == [{"bucket": "2025-03", "units": "15.500", "amount": "6.75"}]
        assert report["previous"]["total"] == {"units": "5.000", "amount": "2.50"}
        assert report["previous"]["units_change_percent"] == "210.0"
        bands = c.get("/reports/energy", params={
            "scope": "account", "id": account, "from": "2025-03-10", "to": "2025-03-10",
            "by_band": True}).json()["items"]
        assert [(b["band"], b["units"]) for b in bands] == [("peak", "10.500"),
                                                            ("valley", "4.000")]
        missing = c.get("/reports/energy", params={"scope": "room", "id": uid("R")})
        assert missing.status_code == 404 and fields(missing) == ["id"]


def test_users_tokens_and_revocation(api: ApiSession, db: psycopg.Connection) -> None:
    name = uid("desk")
    with api.client() as admin:
        assert admin.post("/users", json={"name": name, "role": "viewer"}).status_code == 201
        bad = admin.post("/users", json={"name": name, "role": "root"})
        assert bad.status_code == 422 and fields(bad) == ["role"]
        made = admin.post(f"/users/{name}/tokens", json={"label": "front desk"}).json()
        token = made["token"]
        stored = db.execute("SELECT token_sha256 FROM api_tokens WHERE token_id = %s",
                            (made["token_id"],)).fetchone()[0]
        assert token not in stored and len(stored) == 64
        listed = admin.get("/tokens").json()["items"]
        assert all("token" not in t for t in listed)
    with api.client(None, Authorization=f"Bearer {token}") as user:
        me = user.get("/me").json()
        assert me["role"] == "viewer" and "topup" not in me["permissions"]
        assert user.get("/users").status_code == 403
    with api.client() as admin:
        assert admin.delete(f"/tokens/{made['token_id']}").status_code == 200
    with api.client(None, Authorization=f"Bearer {token}") as user:
        assert user.get("/me").status_code == 401
