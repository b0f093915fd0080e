"""Configuration the agents need: meters, accounts' wallet rules, tariff versions.

It lives in PostgreSQL (written by `meterflow account open` and the operator API) and
reaches every worker as an in-memory table refreshed on a timer (:mod:`pipeline.config_source`),
so a change of tariff, meter or account rules takes effect without a restart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipeline.billing import MeterConfig, TariffBook, WalletConfig, load_tariff_text
from pipeline.billing.money import decimal_text, parse_decimal
from pipeline.billing.reading import DEFAULT_REGISTER_MAX


@dataclass(frozen=True)
class MeterSetup:
    meter_id: str
    commodity: str
    account_id: str | None
    tariff_id: str | None
    multiplier: Decimal = Decimal(1)
    register_max: Decimal | None = None
    max_rate: Decimal | None = None
    expected_interval_s: int = 900
    removed: bool = False

    def meter_config(self) -> MeterConfig:
        """The validation rules of this meter (billing core)."""
        default_max = DEFAULT_REGISTER_MAX if self.commodity == "electricity" else Decimal(
            "99999.999"
        )
        return MeterConfig(register_max=self.register_max or default_max, max_rate=self.max_rate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "meter_id": self.meter_id, "commodity": self.commodity,
            "account_id": self.account_id, "tariff_id": self.tariff_id,
            "multiplier": decimal_text(self.multiplier),
            "register_max": None if self.register_max is None else decimal_text(self.register_max),
            "max_rate": None if self.max_rate is None else decimal_text(self.max_rate),
            "expected_interval_s": self.expected_interval_s, "removed": self.removed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeterSetup:
        def opt(name: str) -> Decimal | None:
            value = data.get(name)
            return None if value is None else parse_decimal(value)

        return cls(
            meter_id=str(data["meter_id"]), commodity=str(data["commodity"]),
            account_id=data.get("account_id"), tariff_id=data.get("tariff_id"),
            multiplier=parse_decimal(data.get("multiplier", "1")),
            register_max=opt("register_max"), max_rate=opt("max_rate"),
            expected_interval_s=int(data.get("expected_interval_s", 900)),
            removed=bool(data.get("removed", False)),
        )


@dataclass(frozen=True)
class AccountSetup:
    account_id: str
    wallet: WalletConfig = field(default_factory=WalletConfig)
    meters: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "wallet": self.wallet.to_dict(),
                "meters": list(self.meters)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountSetup:
        return cls(str(data["account_id"]), WalletConfig.from_dict(data["wallet"]),
                   tuple(str(m) for m in data.get("meters", ())))


@dataclass(frozen=True)
class TariffVersions:
    tariff_id: str
    bodies: tuple[str, ...]

    def book(self) -> TariffBook:
        source = f"tariff {self.tariff_id}"
        return TariffBook([load_tariff_text(body, source) for body in self.bodies])

    def to_dict(self) -> dict[str, Any]:
        return {"tariff_id": self.tariff_id, "bodies": list(self.bodies)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TariffVersions:
        return cls(str(data["tariff_id"]), tuple(str(b) for b in data["bodies"]))


class TariffCache:
    """Parsed tariff books, re-parsed only when a tariff's versions change."""

    def __init__(self) -> None:
        self._books: dict[str, tuple[tuple[str, ...], TariffBook]] = {}

    def book(self, versions: TariffVersions) -> TariffBook:
        cached = self._books.get(versions.tariff_id)
        if cached is None or cached[0] != versions.bodies:
            cached = (versions.bodies, versions.book())
            self._books[versions.tariff_id] = cached
        return cached[1]


def dumps(data: Mapping[str, Any] | Sequence[Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
