"""An account as an operator asks for it (API body or one CSV row), and the CSV format.

The model validates every field (money as yuan text, ids, meters, thresholds) before any
database work; ``parse_csv`` validates every row first and refuses the whole file with one
error per row and field, so an import is all or nothing. The CSV format (docs/contracts.md):

    account_id,name,room_id,customer_id,customer_name,meters,tariffs,level1,level2,level3,
    overdraft,billing_mode,topup

``meters`` is a ``;``-separated list of ``METER_ID:COMMODITY:PROTOCOL[:ADDRESS]``; ``tariffs``
a ``;``-separated list of stored tariff ids (one per commodity); levels, overdraft and the
optional initial ``topup`` are yuan. Empty optional cells take the defaults.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meterflow.api.types import Fen, FenOrZero, Id, Name, TariffId
from pipeline.billing import WalletConfig
from pipeline.billing.bands import parse_window
from pipeline.billing.keep_supply import KeepSupplyPolicy
from services.accounts.spec import InvalidAccount, MeterSpec, parse_meter

COLUMNS = ("account_id", "name", "room_id", "customer_id", "customer_name", "meters",
           "tariffs", "level1", "level2", "level3", "overdraft", "billing_mode", "topup")
REQUIRED = ("account_id", "meters")
MAX_ROWS = 5000


class MeterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    meter_id: Id
    commodity: Literal["electricity", "water"]
    protocol: Literal["modbus", "dlt645", "cjt188", "mqtt"]
    address: str | None = Field(None, pattern=r"^[A-Za-z0-9]{1,32}$")

    def spec(self) -> MeterSpec:
        return MeterSpec(self.meter_id, self.commodity, self.protocol, self.address)


class KeepSupplyIn(BaseModel):
    """Keep-supply windows and the operator's manual flag (pipeline.billing.keep_supply)."""

    model_config = ConfigDict(extra="forbid")

    manual: bool = False
    night: str | None = Field(None, max_length=11, description="HH:MM-HH:MM, local time")
    holidays: list[Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]] = Field(
        default_factory=list, max_length=366)
    timezone: str = Field("Asia/Shanghai", max_length=64)

    @field_validator("night")
    @classmethod
    def _night(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_window(value)
            except Exception as exc:  # the billing core's own message says what is wrong
                raise ValueError(str(exc)) from None
        return value

    def policy(self) -> KeepSupplyPolicy:
        try:
            return KeepSupplyPolicy.from_dict(self.model_dump())
        except Exception as exc:  # bad zone or date: name it
            raise InvalidAccount(f"keep_supply: {exc}") from None


class AccountRequest(BaseModel):
    """One account to open, with its meters and tariffs (stored tariff ids)."""

    model_config = ConfigDict(extra="forbid")

    account_id: Id
    name: Name = ""
    billing_mode: Literal["prepaid", "postpaid"] = "prepaid"
    thresholds: list[FenOrZero] = Field(
        default_factory=lambda: [5000, 2000, 1000], min_length=3, max_length=3,
        description="Alarm levels 1-3 in yuan, highest first")
    overdraft: FenOrZero = 0
    reconnect_above: FenOrZero = 0
    room_id: Id | None = None
    customer_id: Id | None = None
    meters: list[MeterIn] = Field(default_factory=list, max_length=64)
    tariffs: list[TariffId] = Field(default_factory=list, max_length=2,
                                    description="Stored tariff ids, one per commodity")
    keep_supply: KeepSupplyIn | None = None

    def wallet(self) -> WalletConfig:
        a, b, c = self.thresholds
        try:
            return WalletConfig((a, b, c), self.overdraft, self.reconnect_above,
                                self.billing_mode == "postpaid")
        except ValueError as exc:
            raise InvalidAccount(f"--thresholds: {exc}") from None


class ImportRow(BaseModel):
    """A CSV row: the account, and optionally a customer to create and an initial top-up."""

    line: int
    account: AccountRequest
    customer_name: str = ""
    topup_fen: int | None = None


class ImportErrors(ValueError):
    """Every problem of a refused file: ``(field, reason)`` with ``row N.`` in the field."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in errors))
        self.errors = errors


def _row(line: int, cells: dict[str, str]) -> ImportRow:
    def cell(name: str) -> str:
        return (cells.get(name) or "").strip()

    meters = []
    for text in filter(None, (m.strip() for m in cell("meters").split(";"))):
        try:
            meter = parse_meter(text)
        except InvalidAccount as exc:
            raise ValueError(f"meters: {str(exc).partition(': ')[2]}") from None
        meters.append({"meter_id": meter.meter_id, "commodity": meter.commodity,
                       "protocol": meter.protocol, "address": meter.address})
    body: dict[str, object] = {
        "account_id": cell("account_id"), "name": cell("name"), "meters": meters,
        "tariffs": [t.strip() for t in cell("tariffs").split(";") if t.strip()],
        "billing_mode": cell("billing_mode") or "prepaid",
        "overdraft": cell("overdraft") or "0",
        "room_id": cell("room_id") or None, "customer_id": cell("customer_id") or None,
    }
    levels = [cell("level1"), cell("level2"), cell("level3")]
    if any(levels):
        body["thresholds"] = levels
    account = AccountRequest.model_validate(body)
    account.wallet()
    topup = cell("topup")
    fen = None
    if topup:
        fen = AccountTopup.model_validate({"amount": topup}).amount
    return ImportRow(line=line, account=account, customer_name=cell("customer_name"),
                     topup_fen=fen)


class AccountTopup(BaseModel):
    amount: Fen


def parse_csv(text: str) -> list[ImportRow]:
    """Every row of an import file, or ImportErrors listing every bad row and field."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    errors: list[tuple[str, str]] = []
    unknown = [h for h in header if h not in COLUMNS]
    missing = [h for h in REQUIRED if h not in header]
    if unknown or missing:
        if unknown:
            errors.append(("header", f"unknown column(s) {', '.join(unknown)}; the columns "
                                     f"are {','.join(COLUMNS)}"))
        if missing:
            errors.append(("header", f"missing column(s) {', '.join(missing)}"))
        raise ImportErrors(errors)
    reader.fieldnames = header
    parsed: list[ImportRow] = []
    seen: dict[str, int] = {}
    for number, cells in enumerate(reader, start=2):
        if number - 1 > MAX_ROWS:
            raise ImportErrors([("body", f"more than {MAX_ROWS} rows: split the file")])
        if None in cells:
            errors.append((f"row {number}", "more cells than columns"))
            continue
        try:
            row = _row(number, cells)
        except ValidationError as exc:
            for error in exc.errors():
                loc = ".".join(str(p) for p in error["loc"])
                reason = str(error["msg"]).removeprefix("Value error, ")
                errors.append((f"row {number}.{loc}", reason))
            continue
        except (ValueError, InvalidAccount) as exc:
            field, _, reason = str(exc).partition(": ")
            errors.append((f"row {number}.{field.lstrip('-')}", reason))
            continue
        first = seen.setdefault(row.account.account_id, number)
        if first != number:
            errors.append((f"row {number}.account_id", f"{row.account.account_id} is also on "
                                                       f"row {first}"))
        parsed.append(row)
    if not parsed and not errors:
        errors.append(("body", "no rows: give a header line and one row per account"))
    if errors:
        raise ImportErrors(errors)
    return parsed
