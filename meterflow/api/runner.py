"""The batch runner: a thread in the API process that executes due batches item by item.

Each item is idempotent: a top-up uses the key ``batch:<batch id>:<item>``, a command the
same key as its origin, and the other operations set a value; so an item done twice (the
API stopped between doing it and marking it) changes nothing the second time. A batch is
resumed after a restart from its pending items. A session advisory lock per batch keeps two
API processes off the same batch. Items run as the batch's creator and are audited so: as
the creator is when the batch runs (role, scope, disabled), so a user limited or disabled
after scheduling a batch cannot act through it beyond what they may do now.
"""

from __future__ import annotations

import logging
import threading
import zlib
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from meterflow.api import audit
from meterflow.api.auth import Ctx, allowed
from meterflow.api.errors import ApiError
from meterflow.api.places import check_existing
from meterflow.api.scope import EVERYTHING
from meterflow.api.tokens import Actor, scope_of
from services.accounts.changes import Missing
from services.accounts.spec import InvalidAccount
from services.accounts.store import AccountConflict
from services.payments.request import InvalidPayment
from services.payments.store import IdempotencyConflict, UnknownAccount

log = logging.getLogger("meterflow.api.batches")
CHUNK = 200
#: High bits of the batch locks' keys, apart from the migrations' lock (meterflow/db).
LOCK_SPACE = 0x6D66 << 32
DOMAIN_ERRORS = (ApiError, InvalidPayment, UnknownAccount, IdempotencyConflict,
                 InvalidAccount, AccountConflict, Missing, psycopg.errors.IntegrityError,
                 psycopg.errors.DataError)

DUE = """
SELECT batch_id FROM batches WHERE status IN ('scheduled', 'running') AND run_at <= now()
ORDER BY run_at, batch_id LIMIT 20
"""


def _error(exc: Exception) -> dict[str, str]:
    if isinstance(exc, ApiError):
        field, reason = exc.errors[0]
    elif isinstance(exc, InvalidPayment):
        field, reason = exc.field, exc.reason
    elif isinstance(exc, UnknownAccount):
        field, reason = "account_id", f"no account {exc.account_id!r}"
    else:
        field, _, reason = str(exc).partition(": ")
    return {"field": field, "reason": reason}


def current_actor(conn: psycopg.Connection, stored: dict[str, Any]) -> Actor:
    """The batch's creator as they are now (role, scope); ApiError when disabled or gone."""
    user_id = stored.get("user_id")
    if user_id is None:
        return Actor(None, str(stored.get("name", "")), str(stored.get("role", "")),
                     stored.get("token_id"))
    row = conn.execute("SELECT name, role, disabled FROM api_users WHERE user_id = %s",
                       (user_id,)).fetchone()
    if row is None or row[2]:
        raise ApiError(403, "created_by", f"user {stored.get('name')} is disabled or gone: "
                                          "their batches do not run")
    role = str(row[1])
    scope = EVERYTHING if role == "admin" else scope_of(conn, int(user_id))
    return Actor(int(user_id), str(row[0]), role, stored.get("token_id"), scope)


def run_item(ctx: Ctx, batch: dict[str, Any], item: int, target: str) -> dict[str, Any]:
    """Do one item; return its result (raises a domain error when it cannot be done)."""
    from meterflow.api.routers.accounts import apply_patch
    from meterflow.api.routers.batches import NEEDS
    from meterflow.api.routers.control import account_meters, issue, meter_account
    from meterflow.api.routers.payments import pay
    from meterflow.api.routers.tariffs import assign

    op, params, by_meter = batch["operation"], batch["params"], batch["params"]["by"] == "meter"
    if not allowed(ctx.actor.role, NEEDS[op]):
        raise ApiError(403, "role", f"{ctx.actor.role} may no longer run {op}")
    check_existing(ctx.conn, ctx.actor, "meter" if by_meter else "account", target)
    key = f"batch:{batch['batch_id']}:{item}"
    conn = ctx.conn
    if op == "topup":
        paid = pay(ctx, "topup", target, int(params["amount_fen"]), key, params.get("note", ""))
        return {"payment_id": paid.payment_id, "replayed": paid.replayed}
    with conn.transaction():
        if op in ("disconnect", "reconnect"):
            account = meter_account(ctx, target) if by_meter else target
            meters = [target] if by_meter else account_meters(ctx, target)
            made, _ = issue(ctx, meters, account, op, key, params.get("reason", ""))
            return {"commands": [c["command_id"] for c in made]}
        if op == "set_tariff":
            at = params.get("effective_from")
            made = assign(ctx, params["tariff_id"], [target] if by_meter else [],
                          None if by_meter else target,
                          None if at is None else datetime.fromisoformat(at))
            return {"assignments": [int(a["assignment_id"]) for a in made]}
        if op == "charge_item":
            return target_item(ctx, str(params["item_id"]), target)
        assert op == "set_thresholds"
        patch: dict[str, Any] = {"thresholds": params["thresholds_fen"]}
        if params.get("overdraft_fen") is not None:
            patch["overdraft"] = params["overdraft_fen"]
        apply_patch(ctx, target, patch, "account.update")
        return {"thresholds_fen": params["thresholds_fen"]}


def target_item(ctx: Ctx, item_id: str, account_id: str) -> dict[str, Any]:
    """The account pays the charge item from its next run on (in the caller's transaction;
    audited ``charge_item.target``; a second time changes nothing)."""
    site = ctx.conn.execute("SELECT site_id FROM charge_items WHERE item_id = %s",
                            (item_id,)).fetchone()
    if site is None:
        raise ApiError(422, "item_id", f"no charge item {item_id!r}")
    check_existing(ctx.conn, ctx.actor, "site", str(site[0]))
    added = ctx.conn.execute("INSERT INTO charge_item_targets (item_id, kind, target_id) "
                             "VALUES (%s, 'account', %s) ON CONFLICT DO NOTHING RETURNING 1",
                             (item_id, account_id)).fetchone()
    if added is not None:
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "charge_item.target",
                     f"charge_item:{item_id}", None, {"account_id": account_id})
    return {"item_id": item_id, "added": added is not None}


def run_batch(conn: psycopg.Connection, batch_id: str, stop: threading.Event | None = None
              ) -> int:
    """Run a batch's pending items (under its advisory lock); return how many were done."""
    lock = LOCK_SPACE | zlib.crc32(batch_id.encode())
    locked = conn.execute("SELECT pg_try_advisory_lock(%s::bigint)", (lock,)).fetchone()
    if not locked or not locked[0]:
        return 0
    done = 0
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            batch = cur.execute("UPDATE batches SET status = 'running', started_at = "
                                "coalesce(started_at, now()) WHERE batch_id = %s AND status IN "
                                "('scheduled', 'running') AND run_at <= now() RETURNING *",
                                (batch_id,)).fetchone()
        if batch is None:
            return 0
        ctx: Ctx | None = None
        refusal: ApiError | None = None
        try:
            ctx = Ctx(conn, current_actor(conn, batch["actor"]), f"batch:{batch_id}")
        except ApiError as exc:
            refusal = exc
        while stop is None or not stop.is_set():
            status = conn.execute("SELECT status FROM batches WHERE batch_id = %s",
                                  (batch_id,)).fetchone()
            if status is None or status[0] != "running":
                return done
            items = conn.execute("SELECT item, target FROM batch_items WHERE batch_id = %s "
                                 "AND status = 'pending' ORDER BY item LIMIT %s",
                                 (batch_id, CHUNK)).fetchall()
            if not items:
                conn.execute("UPDATE batches SET status = 'done', finished_at = now() "
                             "WHERE batch_id = %s AND status = 'running'", (batch_id,))
                return done
            for item, target in items:
                if stop is not None and stop.is_set():
                    return done
                try:
                    if refusal is not None:
                        raise refusal
                    assert ctx is not None
                    result, state = run_item(ctx, batch, int(item), str(target)), "done"
                except DOMAIN_ERRORS as exc:
                    result, state = _error(exc), "failed"
                    if isinstance(exc, ApiError) and exc.audit is not None:
                        actor, denied = exc.audit
                        with conn.transaction():
                            audit.record(conn, actor, f"batch:{batch_id}", "scope.denied",
                                         denied, None, {"reason": exc.errors[0][1],
                                                        "batch": batch_id, "item": item})
                conn.execute("UPDATE batch_items SET status = %s, result = %s, finished_at = %s "
                             "WHERE batch_id = %s AND item = %s",
                             (state, Jsonb(result), datetime.now(UTC), batch_id, item))
                done += 1
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s::bigint)", (lock,))


class Runner:
    """Polls for due batches every ``poll_s`` and runs them, one at a time."""

    def __init__(self, pool: ConnectionPool, poll_s: float = 0.5) -> None:
        self.pool = pool
        self.poll_s = poll_s
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="batch-runner", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.pool.connection(timeout=5) as conn:
                    for (batch_id,) in conn.execute(DUE).fetchall():
                        run_batch(conn, str(batch_id), self.stopping)
            except Exception:  # database down or a bug: log, wait, try again
                log.exception("batch runner iteration failed; retrying")
            self.stopping.wait(self.poll_s)
