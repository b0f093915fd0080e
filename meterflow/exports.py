"""CSV and XLSX of rows (pandas, openpyxl): money as yuan text and integer fen, never float.

Used by the API's exports and the command line, so a file looks the same from both.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from contracts.money import yuan_text

MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def table_bytes(items: list[dict[str, Any]], columns: list[str], fmt: str, name: str) -> bytes:
    """The rows as CSV (UTF-8) or one XLSX sheet named ``name``; ``*_fen`` columns stay
    integers, every other column is text."""
    frame = pd.DataFrame(items, columns=columns).astype(
        {c: "string" for c in columns if not c.endswith("_fen")})
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False, engine="openpyxl", sheet_name=name[:31])
    return buffer.getvalue()


def with_total(items: list[dict[str, Any]], columns: list[str], label: str
               ) -> list[dict[str, Any]]:
    """The rows and a TOTAL row (``label`` column): every ``*_fen`` column summed, and its
    yuan column beside it when there is one."""
    total: dict[str, Any] = {label: "TOTAL"}
    for column in columns:
        if column.endswith("_fen"):
            fen = sum(int(i[column]) for i in items)
            total[column] = fen
            if column.removesuffix("_fen") in columns:
                total[column.removesuffix("_fen")] = yuan_text(fen)
    return [*items, total]
