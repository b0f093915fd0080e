from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from pipeline.billing.bands import build_band_set, parse_window
from pipeline.billing.errors import TariffError
from pipeline.billing.tariff import TariffBook
from pipeline.billing.tariff_parse import load_tariff_text, parse_tariff

from .conftest import example

HEAD = """id: t1
name: test
commodity: electricity
unit: kWh
currency: CNY
timezone: Asia/Shanghai
"""


def refuse(body: str, head: str = HEAD) -> str:
    with pytest.raises(TariffError) as info:
        load_tariff_text(head + body, "tariff.yaml")
    return str(info.value)


def test_examples_load() -> None:
    power = example("bj-residential-electricity.yaml")
    assert power.kind == "tiered" and power.steps[0].price == Decimal("0.4883")
    assert power.valid_from == date(2012, 7, 1)
    tou = example("gd-commercial-tou.yaml")
    assert tou.kind == "tou" and tou.band_names() == {"sharp", "peak", "flat", "valley"}
    water = example("bj-residential-water.yaml")
    assert [s.name for s in water.surcharges] == ["water_resource", "sewage"]
    flat = load_tariff_text(HEAD + "price: 0.5\n")
    assert flat.kind == "flat" and flat.unit_price(None, None) == Decimal("0.5")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("price: 0.4883\nfoo: 1\n", "tariff.yaml: foo: unknown field"),
        ("", "price: one of price (flat), bands + prices, or tiers is required"),
        ("price: 0.123456\n", "price: 0.123456 has more than 5 decimal places"),
        ("price: -1\n", "price: must not be negative"),
        ("price: abc\n", "price: 'abc' is not a decimal number"),
        ("price: 1\nprices: {a: 1}\n", "prices: not allowed with a flat price"),
        ('bands: {a: ["00:00-24:00"]}\nprice: 1\n', "price: not allowed with bands"),
        ('bands: {a: ["00:00-24:00"]}\n', "prices: is required with bands"),
        (
            'bands: {a: ["00:00-12:00"]}\nprices: {a: 1}\n',
            "bands: 12:00-24:00 is not covered by any band",
        ),
        (
            'bands: {a: ["00:00-24:00"], b: ["06:00-07:00"]}\nprices: {a: 1, b: 1}\n',
            "bands.b[0]: '06:00-07:00' overlaps band 'a' at 06:00",
        ),
        ('bands: {a: ["00:00-25:00"]}\nprices: {a: 1}\n', "bands.a[0]: 25:00 is not a time of day"),
        ('bands: {a: ["06:00-06:00"]}\nprices: {a: 1}\n', "is empty"),
        ('bands: {a: ["6-7"]}\nprices: {a: 1}\n', "is not an 'HH:MM-HH:MM' window"),
        ('bands: {a: "00:00-24:00"}\nprices: {a: 1}\n', "bands.a: must be a list"),
        ("bands: [1]\nprices: {a: 1}\n", "bands: must map band names"),
        ('bands: {A: ["00:00-24:00"]}\nprices: {A: 1}\n', "band name 'A'"),
        (
            'bands: {a: ["00:00-24:00"]}\nprices: {a: 1, b: 2}\n',
            "prices.b: prices a band that no band set uses",
        ),
        (
            'bands: {a: ["00:00-24:00"]}\nprices: {a: 1}\n'
            'seasons: [{months: [7], bands: {s: ["00:00-24:00"]}}]\n',
            "prices.s: is missing: the band is used in the bands",
        ),
        (
            'bands: {a: ["00:00-24:00"]}\nprices: {a: 1}\n'
            'seasons: [{months: [13], bands: {a: ["00:00-24:00"]}}]\n',
            "seasons[0].months: 13 is not a month 1..12",
        ),
        (
            'bands: {a: ["00:00-24:00"]}\nprices: {a: 1}\nseasons: [{months: [7], '
            'bands: {a: ["00:00-24:00"]}}, {months: [7], bands: {a: ["00:00-24:00"]}}]\n',
            "seasons[1].months: month 7 is also in seasons[0]",
        ),
        (
            'bands: {a: ["00:00-24:00"]}\nprices: {a: 1}\nseasons: [{months: [7]}]\n',
            "seasons[0]: must have exactly the fields months and bands",
        ),
        ("price: 1\nseasons: []\n", "seasons: not allowed with a flat price"),
        (
            "tiers: {period: month, steps: [{upto: 240, price: 1}, {upto: 100, price: 2}, "
            "{price: 3}]}\n",
            "tiers.steps[1].upto: must be greater than 240",
        ),
        (
            "tiers: {period: week, steps: [{upto: 1, price: 1}, {price: 2}]}\n",
            "tiers.period: 'week' is not month or year",
        ),
        (
            "tiers: {period: month, steps: [{upto: 1, price: 1}, {upto: 2, price: 2}]}\n",
            "tiers.steps[1].upto: the last step has no upto",
        ),
        (
            "tiers: {period: month, steps: [{price: 1}, {price: 2}]}\n",
            "tiers.steps[0].upto: is required on every step but the last",
        ),
        (
            "tiers: {period: month, steps: [{upto: 1, prices: {a: 1}}, {price: 2}]}\n",
            "tiers.steps[0].price: is required (the tariff has no bands)",
        ),
        ("tiers: {period: month, steps: [{price: 1}]}\n", "tiers.steps: must list at least"),
        ("tiers: {period: month}\n", "tiers: must have exactly the fields period and steps"),
        (
            "tiers: {period: month, steps: [{upto: 1, price: 1, x: 1}, {price: 2}]}\n",
            "tiers.steps[0].x: unknown field",
        ),
        (
            "tiers: {period: month, steps: [{upto: 1, price: 1}, {price: 2}]}\nprice: 1\n",
            "price: not allowed with tiers",
        ),
        (
            'bands: {a: ["00:00-24:00"]}\ntiers: {period: month, steps: [{upto: 1, price: 1}, '
            "{price: 2}]}\n",
            "tiers.steps[0].prices: is required (the tariff has bands)",
        ),
        (
            'bands: {a: ["00:00-24:00"], b: ["24:00-01:00"]}\nprices: {a: 1}\n',
            "24:00 is not a time of day",
        ),
        (
            "price: 1\nsurcharges: [{name: s, price: 1}, {name: s, price: 2}]\n",
            "surcharges[1].name: 's' appears twice",
        ),
        ("price: 1\nsurcharges: [{name: s}]\n", "surcharges[0]: must have exactly"),
        ("price: 1\nsurcharges: {}\n", "surcharges: must be a list"),
        ("price: 1\nvalid_from: 2024-13-01\n", "not valid YAML: month must be in 1..12"),
        ("price: 1\nvalid_from: 2024-01-01 10:00:00\n", "valid_from:"),
        ("price: 1\nvalid_from: [1]\n", "valid_from:"),
        ("price: [1\n", "not valid YAML"),
    ],
)
def test_refused_with_field_and_reason(body: str, message: str) -> None:
    assert message in refuse(body)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        ("name: x\n", "id: is required"),
        ("id: 'bad id'\n", "id: 'bad id' is not an id"),
        (HEAD.replace("unit: kWh", "unit: m3"), "unit: electricity is measured in kWh"),
        (HEAD.replace("Asia/Shanghai", "Mars/Olympus"), "timezone: 'Mars/Olympus' is not"),
        (HEAD.replace("name: test", "name: 5"), "name: must be text"),
        (HEAD.replace("CNY", "yuan"), "currency:"),
    ],
)
def test_header_refused(head: str, message: str) -> None:
    assert message in refuse("price: 1\n", head)


def test_not_a_mapping() -> None:
    with pytest.raises(TariffError, match="must be a YAML mapping"):
        parse_tariff([1, 2])


def test_valid_from_as_text_and_unit_price_errors() -> None:
    tariff = load_tariff_text(
        HEAD + 'valid_from: "2024-01-01"\nbands: {a: ["00:00-24:00"]}\nprices: {a: 1}\n'
    )
    assert tariff.valid_from == date(2024, 1, 1)
    with pytest.raises(ValueError, match="band 'z' has no price"):
        tariff.unit_price("z", None)


def test_windows_wrap_midnight_and_boundaries() -> None:
    bands = build_band_set({"peak": ["06:00-22:00"], "valley": ["22:00-06:00"]}, "bands")
    assert bands.band_at(0) == "valley" and bands.band_at(6 * 60) == "peak"
    assert bands.band_at(22 * 60) == "valley" and bands.band_at(1439) == "valley"
    assert bands.boundaries() == (360, 1320)
    assert parse_window("22:00-24:00").end == 1440
    with pytest.raises(ValueError, match="quoted"):
        parse_window(600)


def test_book_rules() -> None:
    a = load_tariff_text(HEAD + "valid_from: 2024-01-01\nprice: 1\n")
    b = load_tariff_text(HEAD + "valid_from: 2024-06-01\nprice: 2\n")
    assert TariffBook([b, a]).versions == (a, b)
    with pytest.raises(TariffError, match="no tariff given"):
        TariffBook([])
    with pytest.raises(TariffError, match="start the same day"):
        TariffBook([a, a])
    other = load_tariff_text(
        HEAD.replace("id: t1", "id: t2") + "valid_from: 2024-06-01\nprice: 1\n"
    )
    with pytest.raises(TariffError, match="different tariffs"):
        TariffBook([a, other])
    zoned = load_tariff_text(
        HEAD.replace("Asia/Shanghai", "Asia/Urumqi") + "valid_from: 2024-06-01\nprice: 1\n"
    )
    with pytest.raises(TariffError, match="differ in timezone"):
        TariffBook([a, zoned])
    undated = load_tariff_text(HEAD + "price: 1\n")
    with pytest.raises(TariffError, match="each needs one"):
        TariffBook([a, undated])
