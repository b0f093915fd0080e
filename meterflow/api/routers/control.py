"""Control: disconnect and reconnect an account's meters or one meter, keep-supply on/off,
and the commands with their acknowledgements.

A command is built by the dispatcher's own model (``Command.create``) with an id derived
from the meter, the action and the request's ``Idempotency-Key`` (or its request id), and
written to the outbox in the same transaction as its audit row; the relay publishes it to
``meterflow.commands``, the dispatcher delivers it, and its acknowledgement lands in
``command_acks``. Repeating a request with the same key gives the same command, once.

An operator's command is an override at the meter: the wallet is not told. A manual
disconnect of a funded account stays until an operator reconnects (the wallet only sends
a reconnect after its own disconnect); a manual reconnect of an account the wallet cut
stays until the wallet decides again: its next charge while the balance is still at or
below the cut-off does not repeat the disconnect (the wallet already counts the supply as
cut), so the meter stays on until a top-up restores the balance and the wallet sends its
reconnect (harmless) or an operator disconnects it again. Use keep-supply to defer the
wallet's own cuts instead of fighting them. A restricted operator commands, and sees the
commands of, the meters and accounts of their scope only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Response
from psycopg.types.json import Jsonb
from pydantic import Field

from contracts.commands import Command, derive_command_id
from contracts.topics import COMMANDS
from meterflow.api import audit
from meterflow.api.account_request import KeepSupplyIn
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check
from meterflow.api.routers.common import Limit, Model, Offset, PathId, QueryId, one, out, rows
from meterflow.api.scope import in_scope_sql
from meterflow.api.types import KEY_RE, Note

router = APIRouter(tags=["control"])
CONTROL = Depends(require("control"))
READ = Depends(require("read"))
TTL = timedelta(minutes=15)
OptKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=KEY_RE,
                                      description="The same key again gives the same command")]


class ControlIn(Model):
    reason: Note = ""
    ttl_s: int = Field(900, ge=10, le=86400, description="Deadline after issue, seconds")


def issue(ctx: Ctx, meter_ids: list[str], account_id: str | None, action: str,
          key: str, reason: str, ttl: timedelta = TTL) -> tuple[list[dict[str, Any]], bool]:
    """Commands for meters in the caller's transaction; (commands, all replayed)."""
    conn = ctx.conn
    now = datetime.now(UTC)
    made, replayed = [], True
    for meter_id in meter_ids:
        check(conn, ctx.actor, "meter", meter_id)
        command_id = derive_command_id(meter_id, action, f"operator:{key}")
        existing = one(conn, "SELECT * FROM operator_commands WHERE command_id = %s",
                       (command_id,))
        if existing is not None:
            made.append(existing)
            continue
        replayed = False
        command = Command.create(meter_id, action,  # type: ignore[arg-type]
                                 origin=f"operator:{key}", issued_at=now, ttl=ttl,
                                 reason=f"operator {ctx.actor.name}: {reason}"[:500])
        row = one(conn, """
            INSERT INTO operator_commands (command_id, meter_id, account_id, action, issued_at,
                                           deadline, reason, request_key, requested_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *""",
                  (command.command_id, meter_id, account_id, action, command.issued_at,
                   command.deadline, command.reason, key, ctx.actor.name))
        conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                     (COMMANDS, meter_id, Jsonb(command.as_dict())))
        assert row is not None
        audit.record(conn, ctx.actor, ctx.request_id, f"control.{action}", f"meter:{meter_id}",
                     None, row)
        made.append(row)
    return made, replayed


def account_meters(ctx: Ctx, account_id: str) -> list[str]:
    check(ctx.conn, ctx.actor, "account", account_id)
    if one(ctx.conn, "SELECT 1 AS x FROM accounts WHERE account_id = %s", (account_id,)) is None:
        raise ApiError(404, "account_id", f"no account {account_id!r}")
    meters = [r["meter_id"] for r in rows(
        ctx.conn, "SELECT meter_id FROM meters WHERE account_id = %s AND removed_at IS NULL "
                  "ORDER BY meter_id", (account_id,))]
    if not meters:
        raise ApiError(400, "account_id", f"account {account_id} has no meter to command")
    return meters


def meter_account(ctx: Ctx, meter_id: str) -> str | None:
    check(ctx.conn, ctx.actor, "meter", meter_id)
    row = one(ctx.conn, "SELECT account_id, removed_at FROM meters WHERE meter_id = %s",
              (meter_id,))
    if row is None:
        raise ApiError(404, "meter_id", f"no meter {meter_id!r}")
    return row["account_id"]


def _answer(ctx: Ctx, meters: list[str], account: str | None, action: str, key: str | None,
            body: ControlIn, response: Response) -> dict[str, Any]:
    with ctx.conn.transaction():
        made, replayed = issue(ctx, meters, account, action, key or ctx.request_id,
                               body.reason, timedelta(seconds=body.ttl_s))
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return {"commands": out(made)}


def _routes(action: str) -> None:
    def on_account(account_id: PathId, response: Response, idempotency_key: OptKey = None,
                   body: ControlIn | None = None, ctx: Ctx = CONTROL) -> dict[str, Any]:
        meters = account_meters(ctx, account_id)
        return _answer(ctx, meters, account_id, action, idempotency_key,
                       body or ControlIn(), response)

    def on_meter(meter_id: PathId, response: Response, idempotency_key: OptKey = None,
                 body: ControlIn | None = None, ctx: Ctx = CONTROL) -> dict[str, Any]:
        account = meter_account(ctx, meter_id)
        return _answer(ctx, [meter_id], account, action, idempotency_key,
                       body or ControlIn(), response)

    verb = "Trip the relays / close the valves of" if action == "disconnect" else \
        "Close the relays / open the valves of"
    router.post(f"/accounts/{{account_id}}/{action}", status_code=201,
                summary=f"{action.capitalize()} an account",
                description=f"{verb} every meter of an account (an operator override).",
                operation_id=f"{action}_account")(on_account)
    router.post(f"/meters/{{meter_id}}/{action}", status_code=201,
                summary=f"{action.capitalize()} a meter",
                description=f"{verb} one meter (an operator override).",
                operation_id=f"{action}_meter")(on_meter)


for _action in ("disconnect", "reconnect"):
    _routes(_action)


COMMAND_SQL = """
SELECT c.command_id, c.meter_id, c.account_id, c.action, c.issued_at, c.deadline, c.reason,
       c.requested_by, o.published_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object('status', a.status, 'detail', a.detail,
                                                     'at', a.at, 'attempts', a.attempts)
                                  ORDER BY a.at)
                 FROM command_acks a WHERE a.command_id = c.command_id), '[]') AS acks
FROM operator_commands c
LEFT JOIN LATERAL (SELECT published_at FROM outbox WHERE topic = %(topic)s
                   AND key = c.meter_id AND payload->>'command_id' = c.command_id
                   LIMIT 1) o ON true
"""


def _status(row: dict[str, Any]) -> dict[str, Any]:
    acks = row["acks"]
    state = acks[-1]["status"] if acks else ("sent" if row["published_at"] else "pending")
    return {**out(row), "status": state}


@router.get("/commands/{command_id}")
def get_command(command_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,128}$")],
                ctx: Ctx = READ) -> dict[str, Any]:
    """A command and its acknowledgements: pending (in the outbox), sent, then the ack's
    status (applied, failed or expired)."""
    row = one(ctx.conn, COMMAND_SQL + " WHERE c.command_id = %(id)s",
              {"topic": COMMANDS, "id": command_id})
    if row is None:
        wallet = one(ctx.conn, "SELECT * FROM commands WHERE command_id = %s", (command_id,))
        if wallet is None:
            raise ApiError(404, "command_id", f"no command {command_id!r}")
        check(ctx.conn, ctx.actor, "meter", wallet["meter_id"])
        acks = rows(ctx.conn, "SELECT status, detail, at, attempts FROM command_acks "
                              "WHERE command_id = %s ORDER BY at", (command_id,))
        return {**out(wallet), "requested_by": "wallet", "acks": out(acks),
                "status": acks[-1]["status"] if acks else "sent"}
    check(ctx.conn, ctx.actor, "meter", row["meter_id"])
    return _status(row)


@router.get("/commands")
def list_commands(ctx: Ctx = READ, meter_id: QueryId = None, account_id: QueryId = None,
                  limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Operators' commands, newest first."""
    check(ctx.conn, ctx.actor, "meter", meter_id)
    check(ctx.conn, ctx.actor, "account", account_id)
    found = rows(ctx.conn, COMMAND_SQL + f"""
        WHERE (%(m)s::text IS NULL OR c.meter_id = %(m)s)
          AND (%(a)s::text IS NULL OR c.account_id = %(a)s)
          AND {in_scope_sql("meter", "c.meter_id")}
        ORDER BY c.issued_at DESC LIMIT %(limit)s OFFSET %(offset)s""",
        {"topic": COMMANDS, "m": meter_id, "a": account_id, "limit": limit, "offset": offset,
         **ctx.actor.scope.params()})
    return {"items": [_status(r) for r in found], "limit": limit, "offset": offset}


def set_keep_supply(ctx: Ctx, account_id: str, policy: KeepSupplyIn) -> dict[str, Any]:
    """Store the account's keep-supply policy (the workers reload it) and audit it."""
    conn = ctx.conn
    check(conn, ctx.actor, "account", account_id)
    before = one(conn, "SELECT account_id, keep_supply FROM accounts WHERE account_id = %s "
                       "FOR UPDATE", (account_id,))
    if before is None:
        raise ApiError(404, "account_id", f"no account {account_id!r}")
    try:
        value = policy.policy().to_dict()
    except Exception as exc:  # zone or holiday the billing core refuses
        raise ApiError(400, "keep_supply", str(exc)) from None
    after = one(conn, "UPDATE accounts SET keep_supply = %s WHERE account_id = %s "
                      "RETURNING account_id, keep_supply", (Jsonb(value), account_id))
    audit.record(conn, ctx.actor, ctx.request_id, "control.keep_supply",
                 f"account:{account_id}", before, after)
    return dict(out(after))


@router.put("/accounts/{account_id}/keep-supply")
def keep_supply_account(account_id: PathId, body: KeepSupplyIn,
                        ctx: Ctx = CONTROL) -> dict[str, Any]:
    """Keep-supply policy of an account: ``manual`` on defers every due cut until it is
    switched off (then a due cut happens at the workers' next check); ``night`` and
    ``holidays`` defer cuts to the end of the window. Picked up on the next config reload."""
    with ctx.conn.transaction():
        return set_keep_supply(ctx, account_id, body)


@router.put("/meters/{meter_id}/keep-supply")
def keep_supply_meter(meter_id: PathId, body: KeepSupplyIn, ctx: Ctx = CONTROL
                      ) -> dict[str, Any]:
    """Keep supply is decided per account (one wallet): this sets the meter's account's."""
    account = meter_account(ctx, meter_id)
    if account is None:
        raise ApiError(400, "meter_id", f"meter {meter_id} has no account")
    with ctx.conn.transaction():
        return set_keep_supply(ctx, account, body)


def new_key() -> str:
    return uuid.uuid4().hex
