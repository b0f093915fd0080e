"""Helpers of the operators' API tests (fixtures are in conftest.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from .conftest import REPO, ApiSession

TARIFF = REPO / "pipeline" / "billing" / "examples" / "bj-residential-electricity.yaml"
WATER = REPO / "pipeline" / "billing" / "examples" / "bj-residential-water.yaml"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fields(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


def tariff_text(tariff_id: str, path: Path = TARIFF) -> str:
    text = path.read_text()
    first = next(line for line in text.splitlines() if line.startswith("id:"))
    return text.replace(first, f"id: {tariff_id}")


def open_account(api: ApiSession, tariff: str, room: str | None = None,
                 role: str = "operator") -> tuple[str, str]:
    account = uid("ACC")
    meter = f"{account}-E"
    with api.client(role) as c:
        made = c.post("/accounts", json={
            "account_id": account, "name": "Room 301", "room_id": room,
            "meters": [{"meter_id": meter, "commodity": "electricity", "protocol": "mqtt"}],
            "tariffs": [tariff], "thresholds": ["30", "20", "10"], "overdraft": "5"})
        assert made.status_code == 201, made.text
    return account, meter
