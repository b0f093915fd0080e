"""Numbered SQL migrations from ``sql/``, applied once each and recorded with a checksum.

A file is named ``NNNN_description.sql``. Each runs in its own transaction unless its first
line is ``-- meterflow: no-transaction`` (needed for statements that refuse a transaction
block, such as creating a continuous aggregate). A migration already applied whose file has
changed since stops the run: applied history is never rewritten, a new file is added instead.
An advisory lock makes concurrent runs (several pods starting) wait for one another.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
NO_TRANSACTION = "-- meterflow: no-transaction"
LOCK_KEY = 0x6D657465  # "mete"


class MigrationError(RuntimeError):
    """The migrations cannot be applied as they are; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.sql.startswith(NO_TRANSACTION)


def discover(directory: Path = SQL_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: not named NNNN_description.sql")
        version = int(match.group(1))
        if version in found:
            other = found[version].path.name
            raise MigrationError(f"{path.name}: version {version} also used by {other}")
        found[version] = Migration(version, match.group(2), path, path.read_text())
    return [found[v] for v in sorted(found)]


HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


def applied(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    return {version: (name, checksum) for version, name, checksum in rows}


def check(migrations: list[Migration], done: dict[int, tuple[str, str]]) -> list[Migration]:
    """Return the pending migrations, refusing changed or vanished applied files."""
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(done.items()):
        current = by_version.get(version)
        if current is None:
            raise MigrationError(f"applied migration {version:04d}_{name}.sql is missing from sql/")
        if current.checksum != checksum:
            raise MigrationError(
                f"{current.path.name} changed after it was applied (checksum {checksum[:12]} in "
                f"the database, {current.checksum[:12]} on disk): add a new migration instead"
            )
    return [m for m in migrations if m.version not in done]


def migrate(dsn: str, directory: Path = SQL_DIR, report_timezone: str | None = None
            ) -> list[Migration]:
    """Apply pending migrations in order, then write ``report_timezone`` (when given) as
    the default report zone; return the migrations applied now."""
    migrations = discover(directory)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(HISTORY)
            pending = check(migrations, applied(conn))
            for migration in pending:
                _apply(conn, migration)
            if report_timezone is not None:
                set_report_zone(conn, report_timezone)
            return pending
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def set_report_zone(conn: psycopg.Connection, name: str) -> bool:
    """Make ``name`` the default report zone of SQL (``report_settings``,
    sql/0010_site_time_zones.sql); when it changes, the report days of meters in no site
    are recomputed (``rebuild_report_days()``). True when it changed."""
    found = conn.execute("SELECT to_regclass('report_settings')").fetchone()
    if found is None or found[0] is None:
        return False
    try:
        with conn.transaction():
            conn.execute("SELECT now() AT TIME ZONE %s", (name,))
            row = conn.execute("SELECT timezone FROM report_settings FOR UPDATE").fetchone()
            if row is not None and row[0] == name:
                return False
            conn.execute("UPDATE report_settings SET timezone = %s", (name,))
            conn.execute("SELECT rebuild_report_days()")
    except psycopg.Error as exc:
        raise MigrationError(f"report time zone {name!r}: {str(exc).strip()}") from exc
    return True


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    record = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
    params = (migration.version, migration.name, migration.checksum)
    try:
        if migration.transactional:
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(record, params)
        else:
            conn.execute(migration.sql.encode())
            conn.execute(record, params)
    except psycopg.Error as exc:
        raise MigrationError(f"{migration.path.name} failed: {str(exc).strip()}") from exc
