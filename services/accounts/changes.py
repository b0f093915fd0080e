"""Opening and changing accounts beyond ``meterflow account open``: room, customer,
reconnect level and keep-supply policy, tariffs referred to by id, whole-file imports.

Pure rules stay in :mod:`services.accounts.spec` and the billing core; these functions do
the database work in the caller's transaction (the API adds its audit row to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from contracts.money import yuan_text
from pipeline.billing import TariffError, load_tariff_text
from pipeline.billing.keep_supply import KeepSupplyPolicy
from services.accounts.spec import AccountSpec, InvalidAccount, TariffSpec
from services.accounts.store import AccountConflict, OpenResult, open_account, show_account


class Missing(LookupError):
    """Something a request refers to does not exist; ``field`` names the reference."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AccountExtras:
    room_id: str | None = None
    customer_id: str | None = None
    reconnect_above_fen: int = 0
    keep_supply: KeepSupplyPolicy | None = None


def stored_tariff(conn: psycopg.Connection, tariff_id: str) -> TariffSpec:
    """The newest stored version of a tariff, as the account core takes it."""
    row = conn.execute("SELECT body FROM tariffs WHERE tariff_id = %s "
                       "ORDER BY valid_from DESC LIMIT 1", (tariff_id,)).fetchone()
    if row is None:
        raise Missing("tariffs", f"no tariff {tariff_id!r} (upload it: POST /api/v1/tariffs)")
    try:
        tariff = load_tariff_text(str(row[0]), f"tariff {tariff_id}")
    except TariffError as exc:  # stored before the rules changed
        raise InvalidAccount(f"--tariff {tariff_id}: {exc}") from None
    return TariffSpec(tariff.id, tariff.commodity, tariff.valid_from, str(row[0]))


def account_row(conn: psycopg.Connection, account_id: str, *,
                lock: bool = False) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM accounts WHERE account_id = %s"
                           + (" FOR UPDATE" if lock else ""), (account_id,)).fetchone()


def _exists(conn: psycopg.Connection, table: str, column: str, value: str | None,
            field: str) -> None:
    if value is not None and conn.execute(
            f"SELECT 1 FROM {table} WHERE {column} = %s", (value,)).fetchone() is None:
        raise Missing(field, f"no {field.removesuffix('_id')} {value!r}")


def open_with_extras(conn: psycopg.Connection, spec: AccountSpec,
                     extras: AccountExtras) -> OpenResult:
    """Open (idempotently) and set the extras, in the caller's transaction.

    On an account that exists, extras that disagree with what is stored are refused naming
    the field, as :func:`services.accounts.store.open_account` does for its own fields.
    """
    _exists(conn, "rooms", "room_id", extras.room_id, "room_id")
    _exists(conn, "customers", "customer_id", extras.customer_id, "customer_id")
    result = open_account(conn, spec)
    keep = Jsonb(extras.keep_supply.to_dict()) if extras.keep_supply else None
    if result.created:
        conn.execute("UPDATE accounts SET room_id = %s, customer_id = %s, "
                     "reconnect_above_fen = %s, keep_supply = coalesce(%s, keep_supply) "
                     "WHERE account_id = %s",
                     (extras.room_id, extras.customer_id, extras.reconnect_above_fen, keep,
                      spec.account_id))
    else:
        stored = account_row(conn, spec.account_id)
        assert stored is not None
        for name in ("room_id", "customer_id", "reconnect_above_fen"):
            asked = getattr(extras, name)
            if stored[name] != asked:
                raise AccountConflict(f"{name}: {spec.account_id} already has "
                                      f"{stored[name]!r}, not {asked!r}")
    if extras.room_id is not None and spec.meters:
        conn.execute("UPDATE meters SET room_id = %s WHERE meter_id = ANY(%s) "
                     "AND room_id IS NULL",
                     (extras.room_id, [m.meter_id for m in spec.meters]))
    return result


def describe(conn: psycopg.Connection, account_id: str) -> dict[str, Any]:
    """``show_account`` plus the account's rules and where it is."""
    shown = show_account(conn, account_id)
    row = account_row(conn, account_id)
    assert row is not None
    thresholds = [yuan_text(int(x)) for x in row["thresholds_fen"]]
    return {
        **shown,
        "name": row["name"], "billing_mode": row["billing_mode"],
        "thresholds": thresholds, "overdraft": yuan_text(int(row["overdraft_fen"])),
        "reconnect_above": yuan_text(int(row["reconnect_above_fen"])),
        "keep_supply": row["keep_supply"], "room_id": row["room_id"],
        "customer_id": row["customer_id"], "created_at": row["created_at"].isoformat(),
    }
