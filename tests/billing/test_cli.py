from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterflow.cli import _register, app
from pipeline.billing.csv_readings import CsvError, parse_readings_csv

from .conftest import EXAMPLES

_register()
RUNNER = CliRunner()
POWER = str(EXAMPLES / "bj-residential-electricity.yaml")
TOU = str(EXAMPLES / "gd-commercial-tou.yaml")

CSV = """meter_id,ts,reading
M1,2024-07-01T00:00:00+08:00,1000.00
M1,2024-07-15T00:00:00+08:00,1300.00
M1,2024-07-20T00:00:00+08:00,1200.00
M2,2024-07-01T00:00:00+08:00,999999.00
M1,2024-08-01T00:00:00+08:00,1500.00
M2,2024-07-01T10:00:00+08:00,1.00
"""


def run(tmp_path: Path, csv_text: str, *args: str) -> tuple[int, str]:
    readings = tmp_path / "readings.csv"
    readings.write_text(csv_text, encoding="utf-8")
    result = RUNNER.invoke(app, ["bill", "--readings", str(readings), *args])
    return result.exit_code, result.output


def test_bill_json(tmp_path: Path) -> None:
    code, out = run(tmp_path, CSV, "--tariff", POWER, "--max-rate", "100", "--json")
    assert code == 0, out
    m1, m2 = json.loads(out)["meters"]
    assert m1 == {
        "meter_id": "M1",
        "start": "2024-07-01T00:00:00+08:00",
        "end": "2024-08-01T00:00:00+08:00",
        "units": "500.00",
        "units_by_band": {},
        "amount": "282.15",
        "currency": "CNY",
        "rejected": [
            {
                "ts": "2024-07-20T00:00:00+08:00",
                "reason": "register_decreased",
                "detail": "1300.00 -> 1200.00",
            }
        ],
    }
    # Rollover 999999.00 -> 1.00 is 2.00 kWh, at 0.4883: 0.9766 -> 0.98.
    assert (m2["units"], m2["amount"]) == ("2.00", "0.98")


def test_bill_bands_and_table(tmp_path: Path) -> None:
    code, out = run(tmp_path, CSV, "--tariff", TOU, "--json")
    assert code == 0, out
    m1 = json.loads(out)["meters"][0]
    assert m1["units_by_band"] == {
        "valley": "166.67",
        "flat": "187.50",
        "peak": "83.33",
        "sharp": "62.50",
    }
    assert json.loads(out)["meters"][1]["rejected"][0]["reason"] == "register_decreased"
    code, out = run(tmp_path, CSV, "--tariff", TOU)
    assert code == 0 and "Rated consumption" in out and "M1" in out


def test_bill_register_max(tmp_path: Path) -> None:
    text = (
        "meter_id,ts,reading\nW,2024-07-01T00:00:00+08:00,9999.9\nW,2024-07-02T00:00:00+08:00,0.4\n"
    )
    code, out = run(
        tmp_path, text, "--tariff", POWER, "--register-max", "9999.9", "--max-rate", "1", "--json"
    )
    assert code == 0, out
    assert json.loads(out)["meters"][0]["units"] == "0.50"


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        (
            "meter_id,ts,reading\nM1,2024-07-01T10:00,5\n",
            (),
            "readings.csv line 2, field ts: no UTC offset in '2024-07-01T10:00'",
        ),
        (
            "meter_id,ts,reading\nM1,2024-07-01T10:00+08:00,abc\n",
            (),
            "readings.csv line 2, field reading: 'abc' is not a decimal number",
        ),
        ("meter_id,ts\n", (), "readings.csv line 1, field reading: required column"),
        ("meter_id,ts,reading\nM1,x,1\n", (), "line 2, field ts: not an ISO 8601"),
        ("meter_id,ts,reading\nM1,2024-07-01T10:00+08:00\n", (), "line 2: 2 fields"),
        (
            "meter_id,ts,reading\nM1,2024-07-01T10:00+08:00,1\n",
            ("--max-rate", "x"),
            "--max-rate: 'x' is not a decimal number",
        ),
        (
            "meter_id,ts,reading\nM1,2024-07-01T10:00+08:00,1\n",
            ("--max-rate", "-1"),
            "--max-rate: must be positive",
        ),
    ],
)
def test_bad_input_exits_non_zero_naming_the_place(
    tmp_path: Path, text: str, args: tuple[str, ...], message: str
) -> None:
    code, out = run(tmp_path, text, "--tariff", POWER, *args)
    assert code != 0 and message in out


def test_bad_tariff_names_the_field(tmp_path: Path) -> None:
    tariff = tmp_path / "tariff.yaml"
    tariff.write_text(
        (EXAMPLES / "bj-residential-electricity.yaml")
        .read_text(encoding="utf-8")
        .replace("upto: 400", "upto: 200"),
        encoding="utf-8",
    )
    code, out = run(tmp_path, CSV, "--tariff", str(tariff))
    assert code != 0
    assert "tariff.yaml: tiers.steps[1].upto: must be greater than 240" in out
    code, out = run(tmp_path, CSV, "--tariff", str(tmp_path / "missing.yaml"))
    assert code != 0 and "cannot read" in out
    code, out = run(tmp_path, CSV, "--tariff", POWER, "--tariff", POWER)
    assert code != 0 and "start the same day" in out


def test_rating_error_is_reported(tmp_path: Path) -> None:
    text = "meter_id,ts,reading\nM1,2010-07-01T00:00:00+08:00,1\nM1,2010-07-02T00:00:00+08:00,2\n"
    code, out = run(tmp_path, text, "--tariff", POWER)
    assert code != 0 and "not in force" in out


def test_csv_parser_details() -> None:
    text = "meter_id,ts,reading,peak,valley\n\nM1,2024-07-01T00:00:00+08:00,1,0.5,\n"
    (reading,) = parse_readings_csv(text, "r.csv")
    assert reading.registers == {"peak": 0.5} and reading.value == 1
    with pytest.raises(CsvError, match="line 1: the file is empty"):
        parse_readings_csv("", "r.csv")
    with pytest.raises(CsvError, match="field colour: unknown column"):
        parse_readings_csv("meter_id,ts,reading,colour\n", "r.csv")
    with pytest.raises(CsvError, match="line 2, field meter_id: empty meter id"):
        parse_readings_csv("meter_id,ts,reading\n,2024-07-01T00:00:00+08:00,1\n", "r.csv")
    with pytest.raises(CsvError, match="line 2, field peak: negative"):
        parse_readings_csv("meter_id,ts,reading,peak\nM,2024-07-01T00:00:00+08:00,1,-1\n", "r")


def test_total_rounds_the_sum_of_exact_costs_once(tmp_path: Path) -> None:
    flat = tmp_path / "flat.yaml"
    flat.write_text("id: f\ncommodity: electricity\nunit: kWh\ncurrency: CNY\n"
                    "timezone: Asia/Shanghai\nprice: 0.5\n")
    # each meter uses 0.01 kWh = 0.005 yuan: 0.01 each when rounded alone, 0.01 together
    csv_text = ("meter_id,ts,reading\n"
                "A,2024-07-01T00:00:00+08:00,1.00\nA,2024-07-01T01:00:00+08:00,1.01\n"
                "B,2024-07-01T00:00:00+08:00,5.00\nB,2024-07-01T01:00:00+08:00,5.01\n")
    code, out = run(tmp_path, csv_text, "--tariff", str(flat), "--json")
    assert code == 0, out
    body = json.loads(out)
    assert [m["amount"] for m in body["meters"]] == ["0.01", "0.01"]
    assert body["total"] == {"amount": "0.01", "currency": "CNY"}
    code, out = run(tmp_path, csv_text, "--tariff", str(flat))
    assert code == 0 and "total for one account owning these meters: 0.01 CNY" in out
