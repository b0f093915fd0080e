"""Batches through the API: a top-up of 1,000 accounts completes with exactly one payment
per account and progress reaching 1000/1000; a scheduled batch waits for its time; the CLI
follows a batch with a progress bar."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from .api_support import uid
from .conftest import REPO, ApiSession, wait_for

pytestmark = pytest.mark.integration
ACCOUNTS = 1000


def make_accounts(db: psycopg.Connection, prefix: str, count: int) -> list[str]:
    """Accounts straight into the table: the batch is under test, not the opening."""
    ids = [f"{prefix}-{n:04d}" for n in range(count)]
    with db.cursor() as cur, cur.copy("COPY accounts (account_id, name) FROM STDIN") as copy:
        for account in ids:
            copy.write_row((account, "batch test"))
    return ids


def test_batch_topup_of_1000_accounts_applies_once_each(api: ApiSession,
                                                        db: psycopg.Connection) -> None:
    accounts = make_accounts(db, uid("BT"), ACCOUNTS)
    batch_id = uid("topup")
    body = {"batch_id": batch_id, "operation": "topup", "account_ids": accounts,
            "amount": "25.50", "note": "monthly subsidy"}
    with api.client("finance") as c:
        made = c.post("/batches", json=body)
        assert made.status_code == 201, made.text
        assert made.json()["progress"]["total"] == ACCOUNTS
        again = c.post("/batches", json=body)
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        clash = c.post("/batches", json={**body, "amount": "25.51"})
        assert clash.status_code == 409
        seen: list[int] = []

        def finished() -> bool:
            progress = c.get(f"/batches/{batch_id}", params={"limit": 1}).json()
            seen.append(progress["progress"]["finished"])
            return progress["status"] == "done"

        wait_for(finished, 240, "the batch to finish")
        final = c.get(f"/batches/{batch_id}", params={"limit": 1000}).json()
    assert final["progress"] == {"pending": 0, "done": ACCOUNTS, "failed": 0,
                                 "total": ACCOUNTS, "finished": ACCOUNTS}
    assert seen == sorted(seen) and seen[-1] == ACCOUNTS
    assert all(i["result"]["replayed"] is False for i in final["items"])
    per_account = db.execute(
        "SELECT account_id, count(*), sum(amount_fen) FROM payments WHERE account_id = ANY(%s) "
        "GROUP BY account_id", (accounts,)).fetchall()
    assert len(per_account) == ACCOUNTS
    assert {(n, total) for _, n, total in per_account} == {(1, 2550)}
    assert db.execute("SELECT count(*) FROM outbox WHERE topic = 'meterflow.payments' AND "
                      "key = ANY(%s)", (accounts,)).fetchone()[0] == ACCOUNTS
    # The wallets of these accounts are not under test here: keep later tests' relays from
    # feeding a thousand payments to their workers.
    db.execute("UPDATE outbox SET published_at = now() WHERE topic = 'meterflow.payments' "
               "AND key = ANY(%s)", (accounts,))


def test_batch_rights_failures_and_schedule(api: ApiSession, db: psycopg.Connection) -> None:
    accounts = make_accounts(db, uid("BS"), 3)
    with api.client("maintenance") as c:
        refused = c.post("/batches", json={"operation": "topup", "account_ids": accounts,
                                           "amount": "1"})
        assert refused.status_code == 403
        bad = c.post("/batches", json={"operation": "disconnect"})
        assert bad.status_code == 422
    later = datetime.now(UTC) + timedelta(hours=1)
    with api.client("operator") as c:
        scheduled = c.post("/batches", json={
            "operation": "set_thresholds", "account_ids": [*accounts, uid("ghost")],
            "thresholds": ["40", "20", "10"], "run_at": later.isoformat()}).json()
        time.sleep(1.5)  # the runner polls twice a second: it must leave this batch alone
        waiting = c.get(f"/batches/{scheduled['batch_id']}").json()
        assert waiting["status"] == "scheduled" and waiting["progress"]["finished"] == 0
        db.execute("UPDATE batches SET run_at = now() WHERE batch_id = %s",
                   (scheduled["batch_id"],))
        wait_for(lambda: c.get(f"/batches/{scheduled['batch_id']}").json()["status"] == "done",
                 60, "the scheduled batch")
        done = c.get(f"/batches/{scheduled['batch_id']}").json()
    assert done["progress"]["done"] == 3 and done["progress"]["failed"] == 1
    [failed] = [i for i in done["items"] if i["status"] == "failed"]
    assert failed["result"]["field"] == "account_id"
    assert db.execute("SELECT count(*) FROM accounts WHERE account_id = ANY(%s) AND "
                      "thresholds_fen = '{4000,2000,1000}'", (accounts,)).fetchone()[0] == 3


def test_cli_follows_a_batch_with_progress(api: ApiSession, db: psycopg.Connection) -> None:
    accounts = make_accounts(db, uid("BC"), 20)
    env = {**env_of_api(api), "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-m", "meterflow.cli", "ops", "batch", "run", "topup",
         *[arg for a in accounts for arg in ("--account", a)], "--amount", "3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "20/20" in done.stdout and "done: 20 done, 0 failed, 0 pending of 20" in done.stdout
    assert db.execute("SELECT count(*) FROM payments WHERE account_id = ANY(%s)",
                      (accounts,)).fetchone()[0] == 20


def env_of_api(api: ApiSession) -> dict[str, str]:
    import os

    return {**os.environ, "METERFLOW_API_URL": api.url,
            "METERFLOW_API_TOKEN": api.tokens["operator"]}


