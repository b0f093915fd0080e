"""The API's pure parts: money fields, the permission matrix, tokens, CSV import rows,
error field names, the OpenAPI document, and the keep-supply flag of the wallet."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from meterflow.api.account_request import ImportErrors, parse_csv
from meterflow.api.auth import PERMISSIONS, allowed, require
from meterflow.api.errors import _split
from meterflow.api.tokens import ROLES, TOKEN, new_token, token_hash
from meterflow.api.types import Fen, FenOrZero


class Money(BaseModel):
    amount: Fen


class Limit(BaseModel):
    amount: FenOrZero


@given(st.integers(min_value=1, max_value=10**15 - 1))
def test_yuan_text_becomes_exact_fen(fen: int) -> None:
    yuan, cents = divmod(fen, 100)
    assert Money(amount=f"{yuan}.{cents:02d}").amount == fen
    if cents % 10 == 0:
        assert Money(amount=f"{yuan}.{cents // 10}").amount == fen


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_json_numbers_are_refused_for_money(number: float) -> None:
    with pytest.raises(ValidationError, match="JSON number"):
        Money.model_validate({"amount": number})


YUAN = re.compile(r"\s*[0-9]{1,13}(\.[0-9]{1,2})?\s*")


@given(st.text(max_size=20).filter(lambda t: not YUAN.fullmatch(t)))
def test_anything_else_than_yuan_text_is_refused(text: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Money.model_validate({"amount": text})
    assert refused.value.errors()[0]["loc"] == ("amount",)


def test_zero_only_where_allowed() -> None:
    assert Limit(amount="0").amount == 0
    with pytest.raises(ValidationError, match="greater than zero"):
        Money(amount="0.00")


def test_permission_matrix() -> None:
    may = {role: {p for p in PERMISSIONS if allowed(role, p)} for role in ROLES}
    assert may["viewer"] == {"read", "finance.read"}
    assert may["maintenance"] == {"read", "meters.write", "control", "devices.write"}
    assert may["finance"] == {"read", "finance.read", "topup", "refund", "billing.write"}
    assert may["operator"] == {"read", "finance.read", "property.write", "accounts.write",
                               "meters.write", "control", "topup"}
    assert may["admin"] == set(PERMISSIONS)
    for role in ("viewer", "maintenance"):
        assert not allowed(role, "topup") and not allowed(role, "refund")
    for role in ("viewer", "maintenance", "operator"):  # operators read bills, finance runs them
        assert not allowed(role, "billing.write")
    with pytest.raises(KeyError):
        require("no-such-permission")


def test_tokens_are_random_and_stored_only_as_a_hash() -> None:
    (id1, t1), (id2, t2) = new_token(), new_token()
    assert TOKEN.fullmatch(t1) and TOKEN.fullmatch(t2) and t1 != t2 and id1 != id2
    assert t1.startswith(f"mf_{id1}_") and re.fullmatch(r"[0-9a-f]{64}", token_hash(t1))
    assert token_hash(t1) != token_hash(t2)


HEADER = "account_id,meters,tariffs,level1,level2,level3,topup\n"


def test_csv_rows_are_validated_all_before_any_is_opened() -> None:
    rows = parse_csv(HEADER + "A1,M1:electricity:mqtt,t1,50,20,10,30.5\n"
                              "A2,M2:water:cjt188:00000000000001;M3:electricity:mqtt,t1;t2,,,,\n")
    assert [r.account.account_id for r in rows] == ["A1", "A2"]
    assert rows[0].topup_fen == 3050 and rows[0].account.thresholds == [5000, 2000, 1000]
    assert [m.meter_id for m in rows[1].account.meters] == ["M2", "M3"]
    with pytest.raises(ImportErrors) as refused:
        parse_csv(HEADER + "A1,M1:gas:mqtt,t1,,,,\nA1,M2:water:mqtt,t1,1,2,3,1.001\n"
                           "bad id,M4:water:mqtt,,,,,\n")
    assert [f for f, _ in refused.value.errors] == [
        "row 2.meters", "row 3.thresholds", "row 4.account_id"]
    with pytest.raises(ImportErrors, match="unknown column"):
        parse_csv("account_id,meters,colour\nA1,M1:water:mqtt,red\n")


def test_domain_messages_name_api_fields() -> None:
    assert _split("--meter M1: given twice") == ("meters", "M1: given twice")
    assert _split("--thresholds (fen): A already has [1], not [2]")[0] == "thresholds"
    assert _split("room_id: no room 'R1'") == ("room_id", "no room 'R1'")


def test_openapi_document_declares_money_as_text_and_bearer_auth() -> None:
    from meterflow.api.app import create_app
    from meterflow.settings import Settings

    spec = create_app(Settings(), run_batches=False).openapi()
    assert all(path.startswith("/api/v1/") for path in spec["paths"])
    amount = spec["components"]["schemas"]["PaymentIn"]["properties"]["amount"]
    assert amount["type"] == "string" and "pattern" in amount
    secured = [op for path, ops in spec["paths"].items() for op in ops.values()
               if path != "/api/v1/health"]
    assert secured and all(op.get("security") for op in secured)
    assert "security" not in spec["paths"]["/api/v1/health"]["get"]


