"""Readings CSV (``meter_id,ts,reading`` + optional ``sharp,peak,flat,valley``) to readings.

Parses text, not files; every error names the file, the line and the field.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

from contracts.bands import BANDS
from contracts.money import parse_decimal
from pipeline.billing.reading import Reading

REQUIRED = ("meter_id", "ts", "reading")


class CsvError(ValueError):
    """``readings.csv line 7, field ts: no UTC offset in '2024-07-01T10:00'``."""


def _timestamp(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}") from None
    if ts.tzinfo is None:
        raise ValueError(f"no UTC offset in {text!r}")
    return ts


def _number(text: str) -> Decimal:
    value = parse_decimal(text)
    if value < 0:
        raise ValueError(f"negative register value {text!r}")
    return value


def parse_readings_csv(text: str, source: str) -> list[Reading]:
    """All readings of a CSV text, in file order."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None:
        raise CsvError(f"{source} line 1: the file is empty (expected a header)")
    names = [h.strip() for h in header]
    for column in names:
        if column not in (*REQUIRED, *BANDS):
            raise CsvError(f"{source} line 1, field {column}: unknown column")
    for column in REQUIRED:
        if column not in names:
            raise CsvError(f"{source} line 1, field {column}: required column is missing")
    readings: list[Reading] = []
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            raise CsvError(f"{source} line {line}: {len(row)} fields, expected {len(names)}")
        cells = dict(zip(names, (c.strip() for c in row), strict=True))
        field = "meter_id"
        try:
            if not cells["meter_id"]:
                raise ValueError("empty meter id")
            field = "ts"
            ts = _timestamp(cells["ts"])
            field = "reading"
            value = _number(cells["reading"])
            registers: dict[str, Decimal] = {}
            for band in BANDS:
                field = band
                if cells.get(band):
                    registers[band] = _number(cells[band])
        except ValueError as exc:
            raise CsvError(f"{source} line {line}, field {field}: {exc}") from None
        readings.append(Reading(cells["meter_id"], ts, value, registers))
    return readings
