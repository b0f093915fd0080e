"""``meterflow broker sync``: keep Mosquitto's password and ACL files equal to the database.

The database is the one source of truth (``mqtt_users``, ``mqtt_grants``,
sql/0009_security.sql); this process renders both files (:mod:`meterflow.broker.auth_files`),
replaces them atomically when they differ and sends Mosquitto SIGHUP. On a reload Mosquitto
re-reads both files, checks every connected client's user and password again and
disconnects those no longer valid; the others stay connected (mosquitto.conf(5), SIGHUP).

It renders at once when the database announces a change (``LISTEN meterflow_mqtt_auth``,
fired by triggers on the credentials, gateways and meters) and every
``METERFLOW_MQTT_AUTH_PERIOD_S`` anyway (a meter's removal time passing, a lost
notification). After each render it records the snapshot time and the reload time in
``mqtt_auth_syncs``: a change committed before ``snapshot_at`` is in force once
``applied_at`` is set. If the database cannot be reached the files stay as they are.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from meterflow.broker.auth_files import AuthFiles, Identity, Rule, parse_passwd, render
from meterflow.broker.platform import ROLE_RULES, PlatformUser, platform_users
from meterflow.settings import Settings
from runtime.retry import Doubling
from services.devices.passwords import PasswordHash, hash_password

log = logging.getLogger("meterflow.broker")
CHANNEL = "meterflow_mqtt_auth"
DEBOUNCE_S = 0.2


@dataclass(frozen=True, slots=True)
class Target:
    """Where the files go and which broker to tell: ``pid_file`` names Mosquitto's pid
    (None: write only); ``owner`` is the system user the files must belong to."""

    directory: Path
    pid_file: Path | None = None
    owner: str | None = None

    @property
    def passwd(self) -> Path:
        return self.directory / "passwd"

    @property
    def acl(self) -> Path:
        return self.directory / "acl"

    @property
    def status(self) -> Path:
        return self.directory / "sync-status.json"


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: datetime
    devices: list[Identity]
    grants: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Outcome:
    snapshot_at: str
    changed: bool
    reloaded: bool
    users: int
    rules: int
    skipped: tuple[str, ...] = field(default_factory=tuple)
    error: str = ""


def read_snapshot(conn: psycopg.Connection) -> Snapshot:
    """The live identities and grants, read in one snapshot with its time."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        devices = [Identity(str(user), PasswordHash(str(salt), int(iterations), str(digest)),
                            str(kind))
                   for user, digest, salt, iterations, kind in conn.execute(
                       "SELECT username, password_hash, salt, iterations, device_kind "
                       "FROM mqtt_users ORDER BY username").fetchall()]
        grants = [(str(u), str(m)) for u, m in conn.execute(
            "SELECT username, meter_id FROM mqtt_grants ORDER BY 1, 2").fetchall()]
    return Snapshot(row[0], devices, grants)


def platform_identities(users: list[PlatformUser],
                        previous: dict[str, PasswordHash]) -> tuple[list[Identity], list[Rule]]:
    """The platform's users, keeping a previous hash while it still matches the password."""
    identities: list[Identity] = []
    rules: list[Rule] = []
    for user in users:
        password = user.password.get_secret_value()
        kept = previous.get(user.user)
        digest = kept if kept is not None and kept.verify(password) else hash_password(password)
        identities.append(Identity(user.user, digest, user.role))
        rules.extend(Rule(user.user, access, topic) for access, topic in ROLE_RULES[user.role])
    return identities, rules


def write_atomic(path: Path, text: str, owner: str | None) -> bool:
    """Replace ``path`` with ``text`` (mode 0600) unless it already holds it."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


def reload_broker(pid_file: Path | None) -> bool:
    """SIGHUP to the broker of ``pid_file``; False when it is not running."""
    if pid_file is None:
        return False
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError, IndexError):
        return False
    return True


def render_files(settings: Settings, target: Target, snapshot: Snapshot | None) -> AuthFiles:
    """The files for the platform's users and (when given) the snapshot's devices."""
    try:
        previous = parse_passwd(target.passwd.read_text())
    except FileNotFoundError:
        previous = {}
    platform, platform_rules = platform_identities(platform_users(settings), previous)
    if snapshot is None:
        return render(platform, platform_rules, [], [])
    return render(platform, platform_rules, snapshot.devices, snapshot.grants)


def apply(target: Target, files: AuthFiles) -> tuple[bool, bool]:
    """Write both files; reload the broker when either changed. (changed, reloaded)."""
    changed = write_atomic(target.acl, files.acl, target.owner)
    changed = write_atomic(target.passwd, files.passwd, target.owner) or changed
    return changed, changed and reload_broker(target.pid_file)


class BrokerSync:
    """Renders on every announced change and every ``period_s``; see the module text."""

    def __init__(self, settings: Settings, target: Target, name: str | None = None,
                 connect: Callable[[], psycopg.Connection] | None = None) -> None:
        self.settings = settings
        self.target = target
        self.name = name or socket.gethostname()
        self.period_s = settings.mqtt_auth_period_s
        self._connect = connect or (lambda: psycopg.connect(settings.dsn, autocommit=True,
                                                            connect_timeout=5))
        self.last: Outcome | None = None

    def initial(self) -> Outcome:
        """The files for the platform's users alone, for a broker that starts before the
        schema exists (the running sync completes them)."""
        files = render_files(self.settings, self.target, None)
        changed, reloaded = apply(self.target, files)
        outcome = Outcome("", changed, reloaded, files.users, files.rules,
                          error="waiting for the schema (meterflow db migrate)")
        self._record(outcome)
        return outcome

    def once(self, conn: psycopg.Connection) -> Outcome:
        snapshot = read_snapshot(conn)
        files = render_files(self.settings, self.target, snapshot)
        changed, reloaded = apply(self.target, files)
        if files.skipped:
            log.warning("left out of the broker's files: %s", "; ".join(files.skipped))
        outcome = Outcome(snapshot.at.isoformat(), changed, reloaded, files.users, files.rules,
                          files.skipped)
        if changed and not reloaded and self.target.pid_file is not None:
            log.warning("broker files changed but no broker runs with the pid of %s: it reads "
                        "them when it starts", self.target.pid_file)
        conn.execute(
            "INSERT INTO mqtt_auth_syncs (name, snapshot_at, applied_at, users, rules, "
            "skipped, error) VALUES (%s, %s, now(), %s, %s, %s, %s) ON CONFLICT (name) DO "
            "UPDATE SET snapshot_at = excluded.snapshot_at, applied_at = excluded.applied_at, "
            "users = excluded.users, rules = excluded.rules, skipped = excluded.skipped, "
            "error = excluded.error",
            (self.name, snapshot.at, files.users, files.rules, Jsonb(list(files.skipped)),
             outcome.error))
        if changed:
            log.info("broker files: %d user(s), %d rule(s); %s", files.users, files.rules,
                     "broker reloaded" if reloaded else "broker not signalled")
        self._record(outcome)
        return outcome

    def _record(self, outcome: Outcome) -> None:
        self.last = outcome
        with contextlib.suppress(OSError):
            write_atomic(self.target.status, json.dumps(
                {**asdict(outcome), "at": datetime.now(UTC).isoformat()}) + "\n", None)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: listen, render, reload; reconnect with backoff on failures."""
        delay = Doubling(first_s=1.0)
        while not stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.once(conn)
                    delay.succeeded()
                    self._listen(conn, stop)
            except psycopg.errors.UndefinedTable:
                self._record(Outcome("", False, False, 0, 0,
                                     error="waiting for the schema (meterflow db migrate)"))
                stop.wait(0.5)
            except (psycopg.Error, OSError) as exc:
                wait = delay.failed()
                log.warning("broker sync: %s; retrying in %.0fs (the files stay as they are)",
                            str(exc).strip(), wait)
                self._record(Outcome("", False, False, 0, 0, error=str(exc).strip()[:300]))
                stop.wait(wait)

    def _listen(self, conn: psycopg.Connection, stop: threading.Event) -> None:
        due = time.monotonic() + self.period_s
        while not stop.is_set():
            wait = max(0.0, min(due - time.monotonic(), 1.0))
            heard = any(True for _ in conn.notifies(timeout=wait, stop_after=1))
            if heard:
                # a burst of changes (a fleet registered) makes one render
                for _ in conn.notifies(timeout=DEBOUNCE_S):
                    pass
            if heard or time.monotonic() >= due:
                self.once(conn)
                due = time.monotonic() + self.period_s


def wait_applied(conn: psycopg.Connection, timeout_s: float = 30.0,
                 active_within_s: float = 600.0) -> float | None:
    """Wait until every active broker sync applied the database as it is now; return the
    seconds it took, or None when no sync is running. TimeoutError when one lags."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    since, started = row[0], time.monotonic()
    while True:
        found = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE snapshot_at > %s) FROM mqtt_auth_syncs "
            "WHERE applied_at > now() - make_interval(secs => %s)",
            (since, active_within_s)).fetchone()
        assert found is not None
        total, done = int(found[0]), int(found[1])
        if total == 0:
            return None
        if done == total:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{total - done} broker sync(s) did not apply the change "
                               f"within {timeout_s:.0f}s")
        time.sleep(0.05)
