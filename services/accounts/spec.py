"""What ``meterflow account open`` asks for, parsed and validated without I/O.

Bad input gets a clear error naming the field and the reason (docs/architecture.md, invariants); the
wallet rules are checked by building the billing core's own ``WalletConfig``, so the
database never holds an account the wallet would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from pipeline.billing import TariffError, WalletConfig, load_tariff_text
from services.payments.request import ID_PATTERN, InvalidPayment, parse_yuan

COMMODITIES = ("electricity", "water")
PROTOCOLS = ("modbus", "dlt645", "cjt188", "mqtt")
ADDRESS = re.compile(r"[A-Za-z0-9]{1,32}")


class InvalidAccount(ValueError):
    """An account request that breaks a rule; the message names the field."""


@dataclass(frozen=True, slots=True)
class MeterSpec:
    meter_id: str
    commodity: str
    protocol: str
    address: str | None = None  # None: keep what the registry has (or empty)


@dataclass(frozen=True, slots=True)
class TariffSpec:
    tariff_id: str
    commodity: str
    valid_from: date | None  # None: valid since ever ('-infinity' in the table)
    body: str


@dataclass(frozen=True, slots=True)
class AccountSpec:
    account_id: str
    name: str
    meters: tuple[MeterSpec, ...]
    tariffs: tuple[TariffSpec, ...]
    wallet: WalletConfig

    @property
    def billing_mode(self) -> str:
        return "postpaid" if self.wallet.postpaid else "prepaid"

    def tariff_of(self, meter: MeterSpec) -> str | None:
        """The tariff given for the meter's commodity (checked to exist when any is given)."""
        for tariff in self.tariffs:
            if tariff.commodity == meter.commodity:
                return tariff.tariff_id
        return None


def parse_meter(text: str) -> MeterSpec:
    """``METER_ID:COMMODITY:PROTOCOL[:ADDRESS]``, read from the right.

    Meter ids may themselves contain ``:``, addresses (unit ids, 12 or 14 digits) never do,
    so the last part is the protocol or, when it is not one, the address.
    """
    parts = text.split(":")
    has_address = len(parts) >= 4 and parts[-1] not in PROTOCOLS
    if has_address:
        *head, commodity, protocol, address = parts
    else:
        *head, commodity, protocol = parts if len(parts) >= 3 else ["", "", ""]
        address = None
    meter_id = ":".join(head)
    where = f"--meter {text!r}"
    if not ID_PATTERN.fullmatch(meter_id):
        raise InvalidAccount(f"{where}: expected METER_ID:COMMODITY:PROTOCOL[:ADDRESS] with a "
                             "meter id of 1-64 of A-Z a-z 0-9 . _ : -")
    if commodity not in COMMODITIES:
        raise InvalidAccount(f"{where}: commodity {commodity!r} is not one of "
                             f"{', '.join(COMMODITIES)}")
    if protocol not in PROTOCOLS:
        raise InvalidAccount(f"{where}: protocol {protocol!r} is not one of "
                             f"{', '.join(PROTOCOLS)}")
    if address is not None and not ADDRESS.fullmatch(address):
        raise InvalidAccount(f"{where}: address {address!r} must be letters and digits")
    return MeterSpec(meter_id, commodity, protocol, address)


def parse_tariff_file(text: str, source: str) -> TariffSpec:
    """A tariff file's text, validated by the billing core; the body is stored as is."""
    try:
        tariff = load_tariff_text(text, source)
    except TariffError as exc:
        raise InvalidAccount(f"--tariff {source}: {exc}") from None
    return TariffSpec(tariff.id, tariff.commodity, tariff.valid_from, text)


def parse_wallet(thresholds: str, overdraft: str, postpaid: bool) -> WalletConfig:
    """``--thresholds 50,20,10`` (yuan, levels 1-3, descending) and ``--overdraft`` yuan."""
    parts = [p.strip() for p in thresholds.split(",")]
    if len(parts) != 3:
        raise InvalidAccount(f"--thresholds {thresholds!r}: give three amounts in yuan, "
                             "highest first, e.g. 50,20,10")
    try:
        a, b, c = (parse_yuan(p, "--thresholds", allow_zero=True) for p in parts)
        overdraft_fen = parse_yuan(overdraft, "--overdraft", allow_zero=True)
    except InvalidPayment as exc:
        raise InvalidAccount(str(exc)) from None
    try:
        return WalletConfig((a, b, c), overdraft_fen, 0, postpaid)
    except ValueError as exc:
        raise InvalidAccount(f"--thresholds {thresholds!r}: {exc}") from None


def account_spec(account_id: str, name: str, meters: list[str],
                 tariffs: list[tuple[str, str]], wallet: WalletConfig) -> AccountSpec:
    """Check the whole request: ids, meters without repeats, one tariff per commodity, and
    when tariffs are given a tariff for every meter's commodity."""
    if not ID_PATTERN.fullmatch(account_id):
        raise InvalidAccount(f"ACCOUNT {account_id!r}: not 1-64 of A-Z a-z 0-9 . _ : -")
    specs = tuple(parse_meter(m) for m in meters)
    parsed = tuple(parse_tariff_file(text, source) for source, text in tariffs)
    return build_spec(account_id, name, specs, parsed, wallet)


def build_spec(account_id: str, name: str, specs: tuple[MeterSpec, ...],
               parsed: tuple[TariffSpec, ...], wallet: WalletConfig) -> AccountSpec:
    """The checks of :func:`account_spec` on parsed parts (the API and CSV import use it)."""
    seen: set[str] = set()
    for meter in specs:
        if meter.meter_id in seen:
            raise InvalidAccount(f"--meter {meter.meter_id}: given twice")
        seen.add(meter.meter_id)
    by_commodity: dict[str, str] = {}
    for tariff in parsed:
        if tariff.commodity in by_commodity:
            raise InvalidAccount(f"--tariff: two {tariff.commodity} tariffs given "
                                 f"({by_commodity[tariff.commodity]}, {tariff.tariff_id}); "
                                 "give one per commodity")
        by_commodity[tariff.commodity] = tariff.tariff_id
    if parsed:
        for meter in specs:
            if meter.commodity not in by_commodity:
                raise InvalidAccount(f"--meter {meter.meter_id}: no {meter.commodity} tariff "
                                     "among the --tariff files")
    return AccountSpec(account_id, name, specs, parsed, wallet)
