"""Accounts in PostgreSQL: open one with its meters and tariff, show its state.

``open_account`` is idempotent (the same request again changes nothing) and refuses a
request that disagrees with what is stored, naming the field: an operator's repeat must
be safe, a typo must not silently re-wire a meter. ``show_account`` reads the ``balances``
row the pipeline's sink keeps; before the first one lands it shows the opening state the
billing core itself gives a new account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from contracts.money import yuan_text
from pipeline.billing import open_account as open_wallet
from pipeline.configuration import wallet_config
from services.accounts.spec import AccountSpec, MeterSpec
from services.payments.store import UnknownAccount, pending_payments


class AccountConflict(ValueError):
    """The request disagrees with what is stored; the message names the field."""


@dataclass
class OpenResult:
    account_id: str
    created: bool = False
    meters_added: list[str] = field(default_factory=list)
    tariffs_added: list[str] = field(default_factory=list)


def open_account(conn: psycopg.Connection, spec: AccountSpec) -> OpenResult:
    """Store the account, its tariff versions and meters in one transaction."""
    result = OpenResult(spec.account_id)
    with conn.transaction():
        result.created = _account(conn, spec)
        for tariff in spec.tariffs:
            row = conn.execute(
                "INSERT INTO tariffs (tariff_id, valid_from, body) "
                "VALUES (%s, coalesce(%s::date, '-infinity'::date), %s) "
                "ON CONFLICT DO NOTHING RETURNING tariff_id",
                (tariff.tariff_id, tariff.valid_from, tariff.body)).fetchone()
            if row is not None:
                result.tariffs_added.append(tariff.tariff_id)
                continue
            (stored,) = conn.execute(
                "SELECT body FROM tariffs WHERE tariff_id = %s "
                "AND valid_from = coalesce(%s::date, '-infinity'::date)",
                (tariff.tariff_id, tariff.valid_from)).fetchone() or ("",)
            if stored != tariff.body:
                since = tariff.valid_from or "-infinity"
                raise AccountConflict(
                    f"--tariff: tariff {tariff.tariff_id} valid from {since} is already stored "
                    "with another text; give the new version its own valid_from")
        for meter in spec.meters:
            if _meter(conn, spec, meter):
                result.meters_added.append(meter.meter_id)
    return result


def _account(conn: psycopg.Connection, spec: AccountSpec) -> bool:
    wallet = spec.wallet
    thresholds = list(wallet.thresholds_fen)
    row = conn.execute(
        "INSERT INTO accounts (account_id, name, billing_mode, thresholds_fen, overdraft_fen) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_id) DO NOTHING RETURNING account_id",
        (spec.account_id, spec.name, spec.billing_mode, thresholds, wallet.overdraft_fen),
    ).fetchone()
    if row is not None:
        return True
    name, mode, stored_thresholds, overdraft = conn.execute(
        "SELECT name, billing_mode, thresholds_fen, overdraft_fen FROM accounts "
        "WHERE account_id = %s FOR UPDATE", (spec.account_id,)).fetchone() or ("", "", [], 0)
    _same(spec.account_id, "--name", name, spec.name)
    _same(spec.account_id, "--postpaid", mode, spec.billing_mode)
    _same(spec.account_id, "--thresholds (fen)", [int(x) for x in stored_thresholds], thresholds)
    _same(spec.account_id, "--overdraft (fen)", int(overdraft), wallet.overdraft_fen)
    return False


def _same(where: str, name: str, stored: object, asked: object) -> None:
    if stored != asked:
        raise AccountConflict(f"{name}: {where} already has {stored!r}, not {asked!r}")


def _meter(conn: psycopg.Connection, spec: AccountSpec, meter: MeterSpec) -> bool:
    """Insert the meter, or attach an unassigned registry meter that agrees; True if new."""
    tariff_id = spec.tariff_of(meter)
    row = conn.execute(
        "INSERT INTO meters (meter_id, commodity, protocol, address, account_id, tariff_id) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (meter_id) DO NOTHING RETURNING meter_id",
        (meter.meter_id, meter.commodity, meter.protocol, meter.address or "", spec.account_id,
         tariff_id)).fetchone()
    if row is not None:
        return True
    stored = conn.execute(
        "SELECT commodity, protocol, address, account_id, tariff_id FROM meters "
        "WHERE meter_id = %s FOR UPDATE", (meter.meter_id,)).fetchone()
    assert stored is not None
    commodity, protocol, address, account, tariff = stored
    where = f"meter {meter.meter_id}"
    _same(where, "commodity", commodity, meter.commodity)
    _same(where, "protocol", protocol, meter.protocol)
    if meter.address is not None:
        _same(where, "address", address, meter.address)
    if account is not None and account != spec.account_id:
        raise AccountConflict(f"--meter {meter.meter_id}: belongs to account {account}")
    if tariff is not None and tariff_id is not None and tariff != tariff_id:
        raise AccountConflict(f"--tariff: meter {meter.meter_id} already has tariff {tariff}, "
                              f"not {tariff_id}")
    if account is None or (tariff is None and tariff_id is not None):
        # A meter registered before (e.g. from a fleet file) and not yet in any account.
        conn.execute("UPDATE meters SET account_id = %s, tariff_id = coalesce(tariff_id, %s) "
                     "WHERE meter_id = %s", (spec.account_id, tariff_id, meter.meter_id))
    return False


def show_account(conn: psycopg.Connection, account_id: str) -> dict[str, Any]:
    """Balance (yuan text and fen), alarm level, supply, meters and pending payments.

    ``as_of`` is when the pipeline last landed the account's state; None means nothing has
    landed yet and the opening state of the billing core's wallet is shown.
    """
    account = conn.execute(
        "SELECT billing_mode, thresholds_fen, overdraft_fen, reconnect_above_fen, keep_supply "
        "FROM accounts "
        "WHERE account_id = %s", (account_id,)).fetchone()
    if account is None:
        raise UnknownAccount(account_id)
    row = conn.execute("SELECT balance_fen, alarm_level, supply, updated_at FROM balances "
                       "WHERE account_id = %s", (account_id,)).fetchone()
    if row is None:
        wallet = open_wallet(account_id, wallet_config(*account))
        balance, level, supply, as_of = wallet.balance_fen, wallet.alarm_level, wallet.supply, None
    else:
        balance, level, supply, updated = int(row[0]), int(row[1]), str(row[2]), row[3]
        as_of = updated.isoformat()
    meters = [
        {"meter_id": m, "commodity": c, "protocol": p, "tariff_id": t}
        for m, c, p, t in conn.execute(
            "SELECT meter_id, commodity, protocol, tariff_id FROM meters "
            "WHERE account_id = %s AND removed_at IS NULL ORDER BY meter_id", (account_id,))
    ]
    return {
        "account_id": account_id,
        "balance": yuan_text(balance),
        "balance_fen": balance,
        "alarm_level": level,
        "supply": supply,
        "meters": meters,
        "pending_payments": pending_payments(conn, account_id),
        "as_of": as_of,
    }
