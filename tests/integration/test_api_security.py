"""API tokens that expire and rotate, failed authentication audited and throttled, scopes
managed and enforced in batches and aggregates, devices over HTTP, HTTPS served."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from meterflow.api import throttle
from meterflow.stack.process import terminate

from .conftest import API_PORT, REPO, ApiSession, env_of, wait_for
from .scope_support import limited_user, make_side, ok, uid

pytestmark = pytest.mark.integration


def address() -> str:
    """A client address of this test's own (RFC 3849 documentation range), which the tests'
    proxy forwards: the throttle counts per address."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}"


def client(api: ApiSession, token: str | None, client_address: str | None = None,
           **headers: str) -> httpx.Client:
    extra = {"X-Forwarded-For": client_address} if client_address else {}
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"{api.url}/api/v1", timeout=60,
                        headers={**auth, **extra, **headers})


@pytest.fixture()
def viewer(api: ApiSession) -> tuple[str, dict[str, Any]]:
    name = uid("tok")
    with api.client() as admin:
        ok(admin.post("/users", json={"name": name, "role": "viewer"}), 201)
        return name, ok(admin.post(f"/users/{name}/tokens", json={"label": "t"}), 201)


def test_tokens_expire_after_their_lifetime_and_are_refused_at_once(
        api: ApiSession, db: psycopg.Connection, viewer: tuple[str, dict[str, Any]]) -> None:
    name, made = viewer
    expires = datetime.fromisoformat(made["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=5)
    where = address()
    with client(api, made["token"], where) as c:
        me = ok(c.get("/me"), 200)
        assert me["token_expires_at"] == made["expires_at"] and me["scope"]["restricted"] is False
        # time passes: the token's end is now
        db.execute("UPDATE api_tokens SET expires_at = now() WHERE token_id = %s",
                   (made["token_id"],))
        refused = c.get("/me")
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["reason"].startswith("token expired")
    failed = db.execute("SELECT user_name, token_id, target, after->>'reason' FROM audit_log "
                        "WHERE action = 'auth.failed' AND target = %s", (f"address:{where}",))
    assert failed.fetchall() == [(name, made["token_id"], f"address:{where}", "expired")]
    with api.client() as admin:
        tokens = {t["token_id"]: t for t in ok(admin.get("/tokens"), 200)["items"]}
        assert tokens[made["token_id"]]["state"] == "expired"
        assert tokens[made["token_id"]]["last_used_from"] == where
        assert tokens[made["token_id"]]["last_used_at"] is not None
        short = ok(admin.post(f"/users/{name}/tokens", json={"ttl_days": 7}), 201)
        assert abs(datetime.fromisoformat(short["expires_at"])
                   - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
        too_long = admin.post(f"/users/{name}/tokens", json={"ttl_days": 3000})
        assert too_long.status_code == 400 and too_long.json()["errors"][0]["field"] == "ttl_days"


def test_rotation_now_or_after_a_grace_period(api: ApiSession,
                                              viewer: tuple[str, dict[str, Any]]) -> None:
    name, made = viewer
    with client(api, made["token"]) as own:
        graced = ok(own.post(f"/tokens/{made['token_id']}/rotate", json={"grace_s": 600}), 201)
        assert graced["user"] == name and graced["replaces"]["rotated_to"] == graced["token_id"]
        assert ok(own.get("/me"), 200)["user"] == name  # still valid during the grace
        left = datetime.fromisoformat(graced["replaces"]["expires_at"]) - datetime.now(UTC)
        assert timedelta(seconds=500) < left <= timedelta(seconds=600)
        again = own.post(f"/tokens/{made['token_id']}/rotate", json={})
        assert again.status_code == 409 and "rotated to" in again.text
    with client(api, graced["token"]) as new:
        assert ok(new.get("/me"), 200)["token_id"] == graced["token_id"]
        now = ok(new.post(f"/tokens/{graced['token_id']}/rotate"), 201)
        refused = new.get("/me")  # revoked at once without a grace period
        assert refused.status_code == 401 and "revoked" in refused.text
        other = new.post(f"/tokens/{api.tokens['admin'][3:19]}/rotate")
        assert other.status_code == 401
    with client(api, now["token"]) as newest:
        theirs = newest.post(f"/tokens/{api.tokens['admin'][3:19]}/rotate")
        assert theirs.status_code == 403 and theirs.json()["errors"][0]["field"] == "token_id"


def test_failed_authentication_is_audited_and_the_address_blocked(
        api: ApiSession, db: psycopg.Connection, viewer: tuple[str, dict[str, Any]]) -> None:
    name, made = viewer
    attacker, bystander = address(), address()
    wrong_secret = f"mf_{made['token_id']}_" + "A" * 43
    statuses = []
    for attempt in range(10):
        token = wrong_secret if attempt == 0 else f"mf_{uuid.uuid4().hex[:16]}_" + "B" * 43
        with client(api, token, attacker) as c:
            statuses.append(c.get("/accounts").status_code)
    assert statuses == [401] * 10
    with client(api, made["token"], attacker) as c:  # blocked: even a valid token
        blocked = c.get("/me")
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 900
    with client(api, made["token"], bystander) as c:
        assert c.get("/me").status_code == 200  # other addresses are not affected
    rows = db.execute("SELECT action, user_name, after->>'reason' FROM audit_log WHERE "
                      "target = %s ORDER BY audit_id", (f"address:{attacker}",)).fetchall()
    assert [r[0] for r in rows] == ["auth.failed"] * 10 + ["auth.throttled"]
    assert rows[0][1:] == (name, "wrong secret")  # the token claimed to be the viewer's
    assert {r[2] for r in rows[1:10]} == {"unknown"}


def test_throttle_counts_per_user_name_for_a_sign_in(db: psycopg.Connection) -> None:
    """The same throttle as a password sign-in (a web console) would use it: per address
    and per user name, a success clearing the name's count."""
    policy = throttle.ThrottlePolicy(max_failures=3, window_s=60, block_s=30)
    user = uid("signin")
    keys = throttle.keys(address(), user)
    assert throttle.failed(db, policy, keys) == []
    throttle.succeeded(db, keys[1])
    assert throttle.failed(db, policy, keys[1:]) == []  # the count started again
    assert throttle.failed(db, policy, keys[1:]) == []
    started = throttle.failed(db, policy, keys[1:])
    assert [b.key for b in started] == [keys[1]]
    block = throttle.blocked(db, throttle.keys(address(), user))
    assert block is not None and block.key == keys[1] and 0 < block.retry_after_s <= 30
    assert throttle.blocked(db, keys[:1]) is None  # the address had one failure only


def test_scopes_are_managed_and_shown(api: ApiSession, db: psycopg.Connection) -> None:
    with api.client() as admin:
        refused = admin.post("/users", json={"name": uid("adm"), "role": "admin",
                                             "sites": ["S1"]})
        assert refused.status_code == 400 and "never limited" in refused.text
        name = uid("scoped")
        made = ok(admin.post("/users", json={"name": name, "role": "viewer",
                                             "buildings": ["B9"]}), 201)
        assert made["scope"] == {"restricted": True, "sites": [], "buildings": ["B9"]}
        token = ok(admin.post(f"/users/{name}/tokens", json={}), 201)["token"]
        with client(api, token) as user:
            assert ok(user.get("/me"), 200)["scope"]["buildings"] == ["B9"]
            promote = admin.patch(f"/users/{name}", json={"role": "admin"})
            assert promote.status_code == 400
            widened = ok(admin.patch(f"/users/{name}", json={"buildings": []}), 200)
            assert widened["scope"]["restricted"] is False
            assert ok(user.get("/me"), 200)["scope"]["restricted"] is False  # at once
    changes = db.execute("SELECT action FROM audit_log WHERE target = %s ORDER BY audit_id",
                         (f"user:{name}",)).fetchall()
    assert [a for (a,) in changes] == ["user.create", "token.create", "user.update"]


def test_limited_finance_counts_only_its_scope(api: ApiSession, tariff_id: str) -> None:
    with api.client() as admin:
        inner, outer = make_side(admin, tariff_id, "fin"), make_side(admin, tariff_id, "fout")
        finance = limited_user(admin, "finance", sites=[inner.site])
        everything = ok(admin.get("/finance/income", params={"period": "span"}), 200)
    with client(api, finance.token) as c:
        mine = ok(c.get("/finance/income", params={"period": "span"}), 200)
        orders = ok(c.get("/finance/orders"), 200)["items"]
    # each side was topped up 50.00 by make_side; the limited user sees the inner one only
    assert {o["account_id"] for o in orders} == {inner.account}
    assert mine["totals"]["topups_fen"] == 5000
    assert everything["totals"]["topups_fen"] >= 10000
    assert outer.account not in json.dumps(mine)


def test_a_batch_runs_as_its_creator_is_when_it_runs(api: ApiSession, tariff_id: str,
                                                      db: psycopg.Connection) -> None:
    with api.client() as admin:
        side = make_side(admin, tariff_id, "bat")
        operator = limited_user(admin, "operator", sites=[side.site])
        with client(api, operator.token) as c:
            later = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
            batch = ok(c.post("/batches", json={
                "operation": "topup", "account_ids": [side.account], "amount": "1.00",
                "run_at": later}), 201)["batch_id"]
        ok(admin.patch(f"/users/{operator.name}", json={"sites": ["elsewhere"]}), 200)
        done = wait_for(lambda: (b := ok(admin.get(f"/batches/{batch}"), 200))["status"] ==
                        "done" and b, 30, "the batch to run")
    assert done["items"][0]["status"] == "failed"
    assert done["items"][0]["result"]["field"] == "scope"
    denied = db.execute("SELECT user_name, target FROM audit_log WHERE action = "
                        "'scope.denied' AND request_id = %s", (f"batch:{batch}",)).fetchall()
    assert denied == [(operator.name, f"account:{side.account}")]
    assert db.execute("SELECT count(*) FROM payments WHERE idempotency_key LIKE %s",
                      (f"batch:{batch}:%",)).fetchone() == (0,)


def test_gateway_and_credentials_over_http(api: ApiSession, stack: Any,
                                           tariff_id: str) -> None:
    with api.client() as admin:
        side = make_side(admin, tariff_id, "dev")
        maintenance = limited_user(admin, "maintenance", sites=[side.site])
    with client(api, maintenance.token) as c:
        attached = ok(c.post(f"/gateways/{side.gateway}/meters",
                             json={"meter_ids": [side.spare_meter]}), 200)
        assert attached["meters"] == [side.spare_meter]
        issued = ok(c.post(f"/devices/{side.gateway}/credentials", params={"wait": "true"}),
                    201)
        assert issued["username"] == side.gateway and issued["applied_after_s"] is not None
        topic = f"meters/{side.spare_meter}/readings"
        publish = ["mosquitto_pub", "-h", stack.mqtt_host, "-p", str(stack.mqtt_port), "-V",
                   "mqttv5", "-q", "1", "-u", side.gateway, "-P", issued["password"], "-t",
                   topic, "-m", "{}"]
        assert subprocess.run(publish, capture_output=True, timeout=20).returncode == 0
        listed = ok(c.get(f"/devices/{side.gateway}/credentials"), 200)["items"]
        assert "password" not in json.dumps(listed) and len(listed) == 1
        ok(c.delete(f"/devices/{side.gateway}/credentials", params={"wait": "true"}), 200)
        refused = subprocess.run(publish, capture_output=True, timeout=20)
        assert refused.returncode != 0 and b"not authori" in refused.stderr.lower()
        bad = c.post(f"/devices/{side.meter}:x/credentials")
        assert bad.status_code == 404


@pytest.fixture()
def https_api(stack: Any, tmp_path: Path) -> Iterator[str]:
    tls = stack.state_dir.resolve() / "tls"
    port = API_PORT + 1
    proc = start_https(stack, tmp_path / "api.log", port, tls)
    try:
        yield f"https://127.0.0.1:{port}/api/v1"
    finally:
        terminate(proc.pid, grace_s=15)


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def start_https(stack: Any, log: Path, port: int, tls: Path) -> subprocess.Popen[bytes]:
    env = {**env_of(stack), "METERFLOW_API_PORT": str(port), "METERFLOW_API_TLS_CERT_FILE":
           str(tls / "server.crt"), "METERFLOW_API_TLS_KEY_FILE": str(tls / "server.key")}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "meterflow.cli", "api", "--no-batches"],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=REPO)

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"https://127.0.0.1:{port}/api/v1/health",
                             verify=trusting(tls / "ca.crt"), timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, "the HTTPS API")
    return proc


def test_the_api_serves_https(https_api: str, stack: Any, api: ApiSession) -> None:
    ca = stack.state_dir.resolve() / "tls" / "ca.crt"
    ops = [sys.executable, "-m", "meterflow.cli", "ops", "--url",
           https_api.removesuffix("/api/v1"), "--token", api.tokens["viewer"]]
    verified = subprocess.run([*ops, "--ca-file", str(ca), "call", "GET", "/me"], cwd=REPO,
                              env=env_of(stack), capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0 and json.loads(verified.stdout)["role"] == "viewer", \
        verified.stderr
    unverified = subprocess.run([*ops, "call", "GET", "/me"], cwd=REPO, env=env_of(stack),
                                capture_output=True, text=True, timeout=120)
    assert unverified.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in unverified.stderr
    assert httpx.get(f"{https_api}/health", verify=trusting(ca)).json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https_api}/health", verify=True)  # the system's CAs do not know it
    with pytest.raises(httpx.HTTPError):
        httpx.get(https_api.replace("https://", "http://") + "/health", timeout=5)


def test_cli_users_scopes_and_tokens(stack: Any, db: psycopg.Connection) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "meterflow.cli", *args], cwd=REPO,
                              env=env_of(stack), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    name = uid("cli")
    cli("user", "add", name, "--role", "operator", "--site", "S-A", "--building", "B-B")
    made = json.loads(cli("token", "create", name, "--ttl-days", "30", "--json"))
    rotated = json.loads(cli("token", "rotate", made["token_id"], "--json"))
    assert rotated["replaces"] == made["token_id"]
    listed = {t["token_id"]: t for t in json.loads(cli("token", "list", "--user", name,
                                                       "--json"))}
    assert listed[made["token_id"]]["rotated_to"] == rotated["token_id"]
    assert listed[made["token_id"]]["revoked_at"] is not None
    assert "everything" in cli("user", "scope", name)
    actions = db.execute("SELECT action, user_name FROM audit_log WHERE target IN (%s, %s) "
                         "ORDER BY audit_id", (f"user:{name}", f"token:{made['token_id']}"))
    assert actions.fetchall() == [("user.create", "server-cli"), ("token.create", "server-cli"),
                                  ("token.rotate", "server-cli"), ("user.scope", "server-cli")]



def test_references_outside_the_scope_are_refused(api: ApiSession, tariff_id: str,
                                                  db: psycopg.Connection) -> None:
    """A limited user cannot reach out through what they change: a meter of their room
    given another site's account, their building moved to (or a new one made in) a site
    they do not hold."""
    with api.client() as admin:
        inner, outer = make_side(admin, tariff_id, "ref"), make_side(admin, tariff_id, "rof")
        operator = limited_user(admin, "operator", sites=[inner.site])
        by_building = limited_user(admin, "operator", buildings=[inner.building])
    with client(api, operator.token) as c:
        moved = c.patch(f"/meters/{inner.spare_meter}", json={"account_id": outer.account})
        assert moved.status_code == 403 and moved.json()["errors"][0]["field"] == "scope"
        made = c.post("/meters", json={"meter_id": uid("X"), "commodity": "electricity",
                                       "protocol": "mqtt", "room_id": inner.room,
                                       "account_id": outer.account})
        assert made.status_code == 403
        kept = ok(c.patch(f"/meters/{inner.spare_meter}", json={"account_id": inner.account}),
                  200)
        assert kept["account_id"] == inner.account
    with client(api, by_building.token) as c:
        move = c.put(f"/buildings/{inner.building}", json={"site_id": outer.site, "name": "A"})
        assert move.status_code == 403 and move.json()["errors"][0]["field"] == "scope"
        ok(c.put(f"/buildings/{inner.building}", json={"site_id": inner.site,
                                                       "name": "renamed"}), 200)
        new = c.put(f"/buildings/{uid('nb')}", json={"site_id": inner.site})
        assert new.status_code == 403
    assert db.execute("SELECT site_id, name FROM buildings WHERE building_id = %s",
                      (inner.building,)).fetchone() == (inner.site, "renamed")
    assert db.execute("SELECT account_id FROM meters WHERE meter_id = %s",
                      (inner.spare_meter,)).fetchone() == (inner.account,)
