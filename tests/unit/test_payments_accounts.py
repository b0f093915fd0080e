"""Pure parts of `meterflow account open`: meter specs, wallet rules, tariff checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.accounts.spec import (
    InvalidAccount,
    MeterSpec,
    account_spec,
    parse_meter,
    parse_wallet,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "pipeline" / "billing" / "examples"


@pytest.mark.parametrize(("text", "spec"), [
    ("M1:electricity:modbus", MeterSpec("M1", "electricity", "modbus")),
    ("M1:electricity:modbus:1", MeterSpec("M1", "electricity", "modbus", "1")),
    ("W-7:water:cjt188:00000000000001", MeterSpec("W-7", "water", "cjt188", "00000000000001")),
    ("site:B2:electricity:mqtt", MeterSpec("site:B2", "electricity", "mqtt")),
    ("site:B2:electricity:dlt645:000000000001",
     MeterSpec("site:B2", "electricity", "dlt645", "000000000001")),
])
def test_meter_specs_are_read_from_the_right(text: str, spec: MeterSpec) -> None:
    assert parse_meter(text) == spec


@pytest.mark.parametrize(("text", "reason"), [
    ("M1", "expected METER_ID"), ("M1:electricity", "expected METER_ID"),
    ("M1:gas:mqtt", "commodity 'gas'"), ("M1:water:lora", "protocol 'lora'"),
    ("M1:water:cjt188:12-34", "address '12-34'"), (":water:mqtt", "expected METER_ID"),
])
def test_bad_meter_specs_are_refused(text: str, reason: str) -> None:
    with pytest.raises(InvalidAccount, match=reason):
        parse_meter(text)


def test_wallet_rules_in_yuan_become_fen() -> None:
    config = parse_wallet("50,20,10", "5.50", postpaid=False)
    assert config.thresholds_fen == (5000, 2000, 1000)
    assert config.overdraft_fen == 550
    assert parse_wallet("30, 10, 0", "0", postpaid=True).postpaid


@pytest.mark.parametrize(("thresholds", "overdraft", "reason"), [
    ("50,20", "0", "three amounts"), ("10,20,5", "0", "strictly descending"),
    ("50,20,10.001", "0", "at most 2 decimal"), ("50,20,10", "-1", "--overdraft"),
])
def test_bad_wallet_rules_are_refused(thresholds: str, overdraft: str, reason: str) -> None:
    with pytest.raises(InvalidAccount, match=reason):
        parse_wallet(thresholds, overdraft, postpaid=False)


def tariff(name: str) -> tuple[str, str]:
    path = EXAMPLES / name
    return str(path), path.read_text(encoding="utf-8")


def test_a_tariff_is_validated_and_assigned_by_commodity() -> None:
    spec = account_spec("A1", "Room 101", ["E1:electricity:mqtt", "W1:water:mqtt"],
                        [tariff("bj-residential-electricity.yaml"),
                         tariff("bj-residential-water.yaml")], parse_wallet("50,20,10", "0", False))
    electricity, water = spec.tariffs
    assert spec.tariff_of(spec.meters[0]) == electricity.tariff_id
    assert spec.tariff_of(spec.meters[1]) == water.tariff_id
    assert electricity.body == tariff("bj-residential-electricity.yaml")[1]
    assert electricity.valid_from is not None


def test_request_errors_name_what_is_wrong() -> None:
    wallet = parse_wallet("50,20,10", "0", False)
    electricity = tariff("bj-residential-electricity.yaml")
    with pytest.raises(InvalidAccount, match="no water tariff"):
        account_spec("A1", "x", ["E1:electricity:mqtt", "W1:water:mqtt"], [electricity], wallet)
    with pytest.raises(InvalidAccount, match="two electricity tariffs"):
        account_spec("A1", "x", [], [electricity, electricity], wallet)
    with pytest.raises(InvalidAccount, match="given twice"):
        account_spec("A1", "x", ["E1:electricity:mqtt", "E1:electricity:mqtt"], [], wallet)
    with pytest.raises(InvalidAccount, match="ACCOUNT"):
        account_spec("A 1", "x", [], [], wallet)
    with pytest.raises(InvalidAccount, match=r"--tariff broken\.yaml"):
        account_spec("A1", "x", [], [("broken.yaml", "id: t\nunit: kWh\n")], wallet)
