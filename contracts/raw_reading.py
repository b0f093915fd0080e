"""The raw-readings topic payload: parsing and the clear refusal of bad input.

Every connector publishes the same normalised JSON to ``meterflow.readings.raw`` (keyed by
meter id; the schema is in docs/contracts.md)::

    {"meter_id": "M1", "ts": "2026-07-01T10:00:00+08:00", "value": "1234.56", "unit": "kWh",
     "sharp": "1.00", "peak": "2.00", "flat": "3.00", "valley": "4.00", "source": "mqtt"}

Numbers may be JSON numbers or decimal strings; they are read as Decimal from their text, so
no binary float ever touches a register value.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.bands import BANDS
from contracts.errors import PayloadError, json_object


class RawReading(BaseModel):
    """One cumulative register reading, as a connector saw it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    meter_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    ts: datetime
    value: Decimal = Field(ge=0, max_digits=14, decimal_places=3)
    unit: Literal["kWh", "m3"]
    sharp: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=3)
    peak: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=3)
    flat: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=3)
    valley: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=3)
    source: str = Field("", max_length=64)

    @field_validator("ts")
    @classmethod
    def _aware(cls, ts: datetime) -> datetime:
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError("timestamp has no UTC offset")
        return ts

    @field_validator("value", "sharp", "peak", "flat", "valley", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("a boolean is not a register value")
        if isinstance(v, Decimal) and not v.is_finite():
            raise ValueError("not a finite number")
        return v

    def as_dict(self) -> dict[str, Any]:
        """The payload as JSON-ready values (decimals as their text)."""
        body: dict[str, Any] = {
            "meter_id": self.meter_id,
            "ts": self.ts.isoformat(),
            "value": str(self.value),
            "unit": self.unit,
            "source": self.source,
        }
        for band in BANDS:
            register = getattr(self, band)
            if register is not None:
                body[band] = str(register)
        return body

    def to_json(self) -> bytes:
        return json.dumps(self.as_dict(), separators=(",", ":")).encode()


def _decimal_number(text: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - json only hands over valid numbers
        raise ValueError(text) from exc
    if not number.is_finite():
        raise ValueError(text)
    return number


def parse_raw_reading(raw: bytes | None) -> RawReading:
    """Parse a raw-readings message value, or raise PayloadError naming what is wrong."""
    body = json_object(raw, parse_float=_decimal_number, parse_int=_decimal_number)
    try:
        return RawReading.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = first["msg"].removeprefix("Value error, ")
        raise PayloadError(f"field {field}: {message}{more}") from exc
