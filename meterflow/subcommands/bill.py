"""`meterflow bill`: rate a readings CSV offline with one tariff (its versions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from contracts.money import parse_decimal, round_fen, round_half_up, yuan_text
from pipeline.billing.bill import MeterBill, bill_readings
from pipeline.billing.csv_readings import CsvError, parse_readings_csv
from pipeline.billing.errors import RatingError, TariffError
from pipeline.billing.reading import DEFAULT_REGISTER_MAX, MeterConfig
from pipeline.billing.tariff import TariffBook
from pipeline.billing.tariff_parse import load_tariff_text


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: cannot read: {exc}") from None


def _option_decimal(name: str, text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = parse_decimal(text)
    except ValueError as exc:
        raise _fail(f"{name}: {exc}") from None
    if value <= 0:
        raise _fail(f"{name}: must be positive")
    return value


def _report(bill: MeterBill, currency: str, places: int) -> dict[str, Any]:
    def units(value: object) -> str:
        return f"{round_half_up(value, places):f}"  # type: ignore[arg-type]

    return {
        "meter_id": bill.meter_id,
        "start": None if bill.start is None else bill.start.isoformat(),
        "end": None if bill.end is None else bill.end.isoformat(),
        "units": units(bill.units),
        "units_by_band": {b: units(u) for b, u in bill.units_by_band().items()},
        "amount": yuan_text(bill.amount_fen),
        "currency": currency,
        "rejected": [
            {"ts": r.reading.ts.isoformat(), "reason": r.reason, "detail": r.detail}
            for r in bill.rejected
        ],
    }


def _table(reports: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Rated consumption")
    for column in ("meter", "from", "to", "units", "by band", "amount", "rejected"):
        table.add_column(column, justify="right" if column in ("units", "amount") else "left")
    for r in reports:
        table.add_row(
            r["meter_id"],
            r["start"] or "-",
            r["end"] or "-",
            r["units"],
            ", ".join(f"{b} {u}" for b, u in r["units_by_band"].items()) or "-",
            f"{r['amount']} {r['currency']}",
            "\n".join(f"{x['ts']} {x['reason']}" for x in r["rejected"]) or "-",
        )
    Console().print(table)


def bill(
    tariff: list[Path] = typer.Option(..., help="Tariff YAML; repeat for several versions"),
    readings: Path = typer.Option(..., help="CSV: meter_id,ts,reading[,sharp,peak,flat,valley]"),
    register_max: str | None = typer.Option(None, help="Register maximum (default 999999.99)"),
    max_rate: str | None = typer.Option(
        None, help="Plausible units per hour; needed to accept a register rollover"
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table"),
) -> None:
    """Rate a readings CSV offline with a tariff and print units and amounts per meter."""
    versions = []
    for path in tariff:
        try:
            versions.append(load_tariff_text(_read(path), path.name))
        except TariffError as exc:
            raise _fail(str(exc)) from None
    try:
        book = TariffBook(versions)
        rows = parse_readings_csv(_read(readings), readings.name)
    except (TariffError, CsvError) as exc:
        raise _fail(str(exc)) from None
    top = _option_decimal("--register-max", register_max) or DEFAULT_REGISTER_MAX
    config = MeterConfig(register_max=top, max_rate=_option_decimal("--max-rate", max_rate))
    places = max(2, -int(config.resolution.as_tuple().exponent))
    try:
        bills = bill_readings(book, rows, config, datetime.now(UTC))
    except RatingError as exc:
        raise _fail(f"{readings.name}: {exc}") from None
    reports = [_report(b, book.currency, places) for b in bills]
    # One account owning all these meters is charged the rounded sum of their exact costs
    # (the sub-fen remainders of the meters add up before rounding).
    total = {"amount": yuan_text(round_fen(sum((b.cost for b in bills), Decimal(0)))),
             "currency": book.currency}
    if json_out:
        typer.echo(json.dumps({"meters": reports, "total": total}, ensure_ascii=False))
    else:
        _table(reports)
        typer.echo(f"total for one account owning these meters: {total['amount']} "
                   f"{total['currency']}")
