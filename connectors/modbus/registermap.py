"""Register maps: one YAML file per meter model, validated with pydantic.

A map lists the quantities a meter exposes (address, data type, scale, word order,
unit, register table) and how its load relay is switched. Scale factors and limits
are Decimal; a binary float is refused. Files are read by :mod:`connectors.modbus.maploader`.

This module is pure: no I/O.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

MODBUS_MAX_READ = 125  # registers per read request (Modbus Application Protocol v1.1b3, 6.3)


class DataType(StrEnum):
    """Encodings of a quantity in 16-bit register words."""

    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    FLOAT32 = "float32"

    @property
    def words(self) -> int:
        return 1 if self in (DataType.UINT16, DataType.INT16) else 2


class WordOrder(StrEnum):
    """Order of the two words of a 32-bit value."""

    HIGH_FIRST = "high_first"
    LOW_FIRST = "low_first"


class ByteOrder(StrEnum):
    """Order of the two bytes inside each word (Modbus itself is big-endian)."""

    BIG = "big"
    LITTLE = "little"


class Table(StrEnum):
    """Register table a quantity is read from (function code 03 or 04)."""

    HOLDING = "holding"
    INPUT = "input"


def _to_address(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an integer or a hex string such as '0x000B'")
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            if text.startswith("0x"):
                return int(text, 16)
            if text.endswith("h"):  # vendor manuals write 000BH
                return int(text[:-1], 16)
            return int(text, 10)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an integer or hex string such as '0x000B'"
            ) from None
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise ValueError(f"{value} is not an integer")
        return int(value)
    return value


def _to_decimal(value: Any) -> Any:
    if isinstance(value, (bool, float)):
        raise ValueError("must be a decimal string such as '0.01', not a binary float")
    try:
        number = Decimal(value) if isinstance(value, (str, int)) else value
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if isinstance(number, Decimal) and not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


Address = Annotated[int, BeforeValidator(_to_address), Field(ge=0, le=0xFFFF)]
ExactDecimal = Annotated[Decimal, BeforeValidator(_to_decimal)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantity(_Model):
    """One measured value: where it lives and how its words become a number."""

    name: Name
    address: Address
    type: DataType
    count: int | None = Field(None, description="register words; implied by type")
    scale: ExactDecimal = Decimal(1)
    decimals: int | None = Field(None, ge=0, le=9)
    word_order: WordOrder = WordOrder.HIGH_FIRST
    byte_order: ByteOrder = ByteOrder.BIG
    unit: str = ""
    table: Table | None = None
    valid_min: ExactDecimal | None = None
    valid_max: ExactDecimal | None = None
    doc: str = ""
    verified: bool = True

    @model_validator(mode="after")
    def _check(self) -> Quantity:
        if self.count is not None and self.count != self.type.words:
            raise ValueError(
                f"count {self.count} does not match type {self.type} "
                f"({self.type.words} register(s))"
            )
        if self.type is DataType.FLOAT32 and self.decimals is None:
            raise ValueError("decimals is required for float32 quantities")
        if self.scale == 0:
            raise ValueError("scale must not be zero")
        if (
            self.valid_min is not None
            and self.valid_max is not None
            and self.valid_min > self.valid_max
        ):
            raise ValueError("valid_min is greater than valid_max")
        if self.address + self.type.words - 1 > 0xFFFF:
            raise ValueError("register range runs past 0xFFFF")
        return self

    @property
    def words(self) -> int:
        return self.type.words


class RegisterRelay(_Model):
    """Relay switched by writing a value to one holding register (function 06)."""

    kind: Literal["register"]
    address: Address
    trip: int = Field(ge=0, le=0xFFFF)
    close: int = Field(ge=0, le=0xFFFF)
    verified: bool = False
    doc: str = ""

    @model_validator(mode="after")
    def _check(self) -> RegisterRelay:
        if self.trip == self.close:
            raise ValueError("trip and close values must differ")
        return self


class CoilRelay(_Model):
    """Relay switched by writing a coil (function 05)."""

    kind: Literal["coil"]
    address: Address
    trip: bool = False
    close: bool = True
    verified: bool = False
    doc: str = ""

    @model_validator(mode="after")
    def _check(self) -> CoilRelay:
        if self.trip == self.close:
            raise ValueError("trip and close values must differ")
        return self


class NoRelay(_Model):
    """The meter has no controllable relay."""

    kind: Literal["none"]
    reason: str = "the meter has no relay"


Relay = Annotated[RegisterRelay | CoilRelay | NoRelay, Field(discriminator="kind")]


class RegisterMap(_Model):
    """The register map of one meter model."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    manufacturer: str
    model: str
    description: str = ""
    source: str = Field(description="vendor document the addresses come from")
    table: Table = Table.HOLDING
    max_block: int = Field(MODBUS_MAX_READ, ge=2, le=MODBUS_MAX_READ)
    max_gap: int = Field(0, ge=0, le=32)
    quantities: list[Quantity] = Field(min_length=1)
    relay: Relay
    notes: list[str] = []

    @model_validator(mode="after")
    def _check(self) -> RegisterMap:
        seen: dict[str, int] = {}
        used: dict[tuple[Table, int], str] = {}
        for i, q in enumerate(self.quantities):
            if q.name in seen:
                raise ValueError(
                    f"quantities[{i}]: name {q.name!r} repeats quantities[{seen[q.name]}]"
                )
            seen[q.name] = i
            table = self.table_of(q)
            for reg in range(q.address, q.address + q.words):
                other = used.get((table, reg))
                if other is not None:
                    raise ValueError(
                        f"quantities[{i}] ({q.name}): register 0x{reg:04X} overlaps {other}"
                    )
                used[(table, reg)] = q.name
        return self

    def table_of(self, quantity: Quantity) -> Table:
        return quantity.table or self.table

    def quantity(self, name: str) -> Quantity:
        for q in self.quantities:
            if q.name == name:
                return q
        raise KeyError(name)

    @property
    def unverified(self) -> list[str]:
        """Names of quantities (and ``relay``) not checked against vendor documents."""
        names = [q.name for q in self.quantities if not q.verified]
        if not isinstance(self.relay, NoRelay) and not self.relay.verified:
            names.append("relay")
        return names
