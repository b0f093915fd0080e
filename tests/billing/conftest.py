"""Shared fixtures: the example tariffs shipped with the billing package."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.billing.tariff import Tariff, TariffBook
from pipeline.billing.tariff_parse import load_tariff_text

EXAMPLES = Path(__file__).resolve().parents[2] / "pipeline" / "billing" / "examples"


def example(name: str) -> Tariff:
    path = EXAMPLES / name
    return load_tariff_text(path.read_text(encoding="utf-8"), path.name)


def book_of(text: str) -> TariffBook:
    return TariffBook([load_tariff_text(text, "t.yaml")])


@pytest.fixture
def bj_power() -> TariffBook:
    return TariffBook([example("bj-residential-electricity.yaml")])


@pytest.fixture
def gd_tou() -> TariffBook:
    return TariffBook([example("gd-commercial-tou.yaml")])


@pytest.fixture
def bj_water() -> TariffBook:
    return TariffBook([example("bj-residential-water.yaml")])
