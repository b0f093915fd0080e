"""Configuration the stream stages need: meters, accounts' wallet rules, tariff versions.

It lives in PostgreSQL (written by `meterflow account open` and the operator API) and
reaches every worker as an in-memory snapshot refreshed on a timer
(:mod:`pipeline.config_source`), so a change of tariff, meter or account rules takes effect
without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from pipeline.billing import MeterConfig, TariffBook, WalletConfig, load_tariff_text
from pipeline.billing.keep_supply import KeepSupplyPolicy
from pipeline.billing.reading import DEFAULT_REGISTER_MAX

WATER_REGISTER_MAX = Decimal("99999.999")


@dataclass(frozen=True)
class MeterSetup:
    """A meter as the stages see it: its account, tariff and validation rules."""

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
        default_max = DEFAULT_REGISTER_MAX if self.commodity == "electricity" \
            else WATER_REGISTER_MAX
        return MeterConfig(register_max=self.register_max or default_max, max_rate=self.max_rate)


def wallet_config(billing_mode: str, thresholds_fen: Sequence[int], overdraft_fen: int,
                  reconnect_above_fen: int, keep_supply: Mapping[str, object] | None
                  ) -> WalletConfig:
    """An ``accounts`` row's wallet rules (sql/0003_billing.sql): the one place they are
    read, so every reader keeps the reconnect level and the keep-supply policy."""
    first, second, third = (int(x) for x in thresholds_fen)
    policy = KeepSupplyPolicy.from_dict(dict(keep_supply)) if keep_supply \
        else KeepSupplyPolicy()
    return WalletConfig((first, second, third), int(overdraft_fen), int(reconnect_above_fen),
                        billing_mode == "postpaid", policy)


@dataclass(frozen=True)
class AccountSetup:
    """An account as the wallet stage sees it: its rules and its current meters."""

    account_id: str
    wallet: WalletConfig = field(default_factory=WalletConfig)
    meters: tuple[str, ...] = ()


@dataclass(frozen=True)
class TariffVersions:
    """Every version of one tariff id, as stored (YAML text per version)."""

    tariff_id: str
    bodies: tuple[str, ...]

    def book(self) -> TariffBook:
        source = f"tariff {self.tariff_id}"
        return TariffBook([load_tariff_text(body, source) for body in self.bodies])


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
