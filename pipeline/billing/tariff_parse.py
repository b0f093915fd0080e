"""Tariff files: parse and validate, refusing with the field path and the reason.

Allowed shapes (exactly one pricing form):
  flat      ``price``; no ``bands``/``prices``/``seasons``/``tiers``
  tou       ``bands`` + ``prices`` (+ optional ``seasons``); no ``price``/``tiers``
  tiered    ``tiers``; steps carry ``price`` without bands, ``prices`` with ``bands``
            (+ optional ``seasons``); no top-level ``price``/``prices``
``surcharges`` may accompany any form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from contracts.money import parse_decimal
from pipeline.billing.bands import BandSet, build_band_set
from pipeline.billing.errors import TariffError
from pipeline.billing.tariff import Season, Step, Surcharge, Tariff
from pipeline.billing.yaml_decimal import load_yaml

PRICE_PLACES = 5
UNITS = {"electricity": "kWh", "water": "m3"}
_FIELDS = {
    "id",
    "name",
    "commodity",
    "unit",
    "currency",
    "timezone",
    "valid_from",
    "price",
    "bands",
    "prices",
    "seasons",
    "tiers",
    "surcharges",
}


def load_tariff_text(text: str, source: str = "") -> Tariff:
    """A tariff from YAML text; TariffError names ``source``, the field and the reason."""
    try:
        data = load_yaml(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise TariffError("", f"not valid YAML: {exc}", source) from None
    try:
        return parse_tariff(data)
    except TariffError as exc:
        raise exc.in_source(source) from None


def _price(value: object, path: str) -> Decimal:
    try:
        price = parse_decimal(value)
    except ValueError as exc:
        raise TariffError(path, str(exc)) from None
    if price < 0:
        raise TariffError(path, "must not be negative")
    exponent = price.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > PRICE_PLACES:
        raise TariffError(path, f"{price} has more than {PRICE_PLACES} decimal places")
    return price


def _text(data: Mapping[str, Any], key: str, pattern: str, hint: str) -> str:
    value = data.get(key)
    if value is None:
        raise TariffError(key, "is required")
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise TariffError(key, f"{value!r} is not {hint}")
    return value


def _price_table(value: object, path: str) -> dict[str, Decimal]:
    if not isinstance(value, Mapping) or not value:
        raise TariffError(path, "must map band names to prices")
    return {str(band): _price(p, f"{path}.{band}") for band, p in value.items()}


def _valid_from(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise TariffError("valid_from", f"{value!r} is not a date YYYY-MM-DD")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise TariffError("valid_from", f"{value!r} is not a date YYYY-MM-DD") from None
    return value


def _seasons(value: object) -> tuple[Season, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise TariffError("seasons", "must be a list of {months, bands}")
    seasons: list[Season] = []
    seen: dict[int, int] = {}
    for i, item in enumerate(value):
        path = f"seasons[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"months", "bands"}:
            raise TariffError(path, "must have exactly the fields months and bands")
        months = item["months"]
        if not isinstance(months, list) or not months:
            raise TariffError(f"{path}.months", "must be a list of months 1..12")
        for month in months:
            if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
                raise TariffError(f"{path}.months", f"{month!r} is not a month 1..12")
            if month in seen:
                raise TariffError(
                    f"{path}.months", f"month {month} is also in seasons[{seen[month]}]"
                )
            seen[month] = i
        seasons.append(Season(frozenset(months), build_band_set(item["bands"], f"{path}.bands")))
    return tuple(seasons)


def _steps(value: object, bands: bool) -> tuple[str, tuple[Step, ...]]:
    if not isinstance(value, Mapping) or set(value) != {"period", "steps"}:
        raise TariffError("tiers", "must have exactly the fields period and steps")
    period = value["period"]
    if period not in ("month", "year"):
        raise TariffError("tiers.period", f"{period!r} is not month or year")
    raw = value["steps"]
    if not isinstance(raw, list) or len(raw) < 2:
        raise TariffError("tiers.steps", "must list at least two steps")
    steps: list[Step] = []
    previous = Decimal(0)
    for i, item in enumerate(raw):
        path = f"tiers.steps[{i}]"
        if not isinstance(item, Mapping):
            raise TariffError(path, "must be a mapping with upto and price/prices")
        extra = set(item) - {"upto", "price", "prices"}
        if extra:
            raise TariffError(f"{path}.{sorted(extra)[0]}", "unknown field")
        last = i == len(raw) - 1
        upto: Decimal | None = None
        if last and "upto" in item:
            raise TariffError(f"{path}.upto", "the last step has no upto")
        if not last:
            if "upto" not in item:
                raise TariffError(f"{path}.upto", "is required on every step but the last")
            try:
                upto = parse_decimal(item["upto"])
            except ValueError as exc:
                raise TariffError(f"{path}.upto", str(exc)) from None
            if upto <= previous:
                raise TariffError(f"{path}.upto", f"must be greater than {previous}")
            previous = upto
        if bands:
            if "price" in item or "prices" not in item:
                raise TariffError(f"{path}.prices", "is required (the tariff has bands)")
            steps.append(Step(upto, prices=_price_table(item["prices"], f"{path}.prices")))
        else:
            if "prices" in item or "price" not in item:
                raise TariffError(f"{path}.price", "is required (the tariff has no bands)")
            steps.append(Step(upto, price=_price(item["price"], f"{path}.price")))
    return str(period), tuple(steps)


def _surcharges(value: object) -> tuple[Surcharge, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TariffError("surcharges", "must be a list of {name, price}")
    result: list[Surcharge] = []
    for i, item in enumerate(value):
        path = f"surcharges[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"name", "price"}:
            raise TariffError(path, "must have exactly the fields name and price")
        if not isinstance(item["name"], str) or not item["name"]:
            raise TariffError(f"{path}.name", "must be a non-empty name")
        if item["name"] in {s.name for s in result}:
            raise TariffError(f"{path}.name", f"{item['name']!r} appears twice")
        result.append(Surcharge(item["name"], _price(item["price"], f"{path}.price")))
    return tuple(result)


def _check_prices(tables: list[tuple[str, Mapping[str, Decimal]]], sets: list[BandSet]) -> None:
    """Every band used in any season has a price in every table; no price for no band."""
    used: set[str] = set()
    for band_set in sets:
        used |= band_set.names
    for path, table in tables:
        for band in sorted(used - set(table)):
            raise TariffError(f"{path}.{band}", "is missing: the band is used in the bands")
        for band in sorted(set(table) - used):
            raise TariffError(f"{path}.{band}", "prices a band that no band set uses")


def parse_tariff(data: object) -> Tariff:
    """Validate a parsed tariff document; see the module docstring for the allowed shapes."""
    if not isinstance(data, Mapping):
        raise TariffError("", "a tariff file must be a YAML mapping")
    for key in data:
        if key not in _FIELDS:
            raise TariffError(str(key), "unknown field")
    tariff_id = _text(
        data, "id", r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "an id (letters, digits . _ -)"
    )
    name = data.get("name", tariff_id)
    if not isinstance(name, str):
        raise TariffError("name", "must be text")
    commodity = _text(data, "commodity", "electricity|water", "electricity or water")
    unit = _text(data, "unit", "kWh|m3", "kWh or m3")
    if UNITS[commodity] != unit:
        raise TariffError("unit", f"{commodity} is measured in {UNITS[commodity]}, not {unit}")
    currency = _text(data, "currency", "[A-Z]{3}", "a currency code such as CNY")
    zone_name = _text(data, "timezone", r"[A-Za-z0-9_+\-/]+", "an IANA zone such as Asia/Shanghai")
    try:
        ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError("timezone", f"{zone_name!r} is not a known IANA zone") from None
    has = {key for key in ("price", "bands", "prices", "seasons", "tiers") if key in data}
    if "tiers" in has:
        if has & {"price", "prices"}:
            raise TariffError(
                sorted(has & {"price", "prices"})[0],
                "not allowed with tiers (prices go in tiers.steps)",
            )
    elif "bands" in has:
        if "price" in has:
            raise TariffError("price", "not allowed with bands (use prices per band)")
        if "prices" not in has:
            raise TariffError("prices", "is required with bands")
    elif "price" in has:
        if has - {"price"}:
            raise TariffError(sorted(has - {"price"})[0], "not allowed with a flat price")
    else:
        raise TariffError("price", "one of price (flat), bands + prices, or tiers is required")
    if "seasons" in has and "bands" not in has:
        raise TariffError("seasons", "needs base bands")
    bands = build_band_set(data["bands"], "bands") if "bands" in has else None
    seasons = _seasons(data.get("seasons"))
    sets = ([bands] if bands else []) + [s.bands for s in seasons]
    period: str | None = None
    steps: tuple[Step, ...] = ()
    prices: dict[str, Decimal] | None = None
    if "tiers" in has:
        period, steps = _steps(data["tiers"], bands is not None)
        if bands is not None:
            _check_prices(
                [(f"tiers.steps[{i}].prices", s.prices or {}) for i, s in enumerate(steps)], sets
            )
    elif bands is not None:
        prices = _price_table(data["prices"], "prices")
        _check_prices([("prices", prices)], sets)
    return Tariff(
        id=tariff_id,
        name=name,
        commodity=commodity,
        unit=unit,
        currency=currency,
        timezone=zone_name,
        valid_from=_valid_from(data.get("valid_from")),
        price=_price(data["price"], "price") if "price" in has else None,
        bands=bands,
        prices=prices,
        seasons=seasons,
        tier_period=period,
        steps=steps,
        surcharges=_surcharges(data.get("surcharges")),
    )
