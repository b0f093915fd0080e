"""PostgreSQL 15 with TimescaleDB, in its own data directory and on its own port.

The system cluster is never touched. PostgreSQL refuses to run as root, so when the stack
is started by root the server runs as the ``postgres`` system user and owns its folder.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg

from meterflow.settings import Settings
from meterflow.stack.process import Health, StackError, chown_tree, service_user
from meterflow.stack.service import Service

PG_BIN = Path(os.environ.get("METERFLOW_PG_BIN", "/usr/lib/postgresql/15/bin"))


def timescaledb_available() -> bool:
    share = subprocess.run(
        [str(PG_BIN / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
    )
    if share.returncode != 0:
        return (Path("/usr/share/postgresql/15/extension") / "timescaledb.control").exists()
    return (Path(share.stdout.strip()) / "extension" / "timescaledb.control").exists()


class Postgres(Service):
    name = "postgres"
    port_env = "METERFLOW_PG_PORT"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.run_as = service_user("postgres")

    @property
    def port(self) -> int:
        return self.settings.pg_port

    @property
    def host(self) -> str:
        return self.settings.pg_host

    @property
    def data(self) -> Path:
        return self.home / "data"

    def prepare(self) -> None:
        if not (PG_BIN / "postgres").exists():
            raise StackError(f"PostgreSQL 15 is missing ({PG_BIN}): run scripts/setup.sh")
        if not timescaledb_available():
            raise StackError("the TimescaleDB extension is missing: run scripts/setup.sh")
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            chown_tree(self.home, self.run_as)
            reach = subprocess.run(["test", "-w", str(self.home)], user=self.run_as, check=False)
            if reach.returncode != 0:
                raise StackError(
                    f"the {self.run_as} user cannot reach {self.home} (a parent folder is "
                    "closed to other users): set METERFLOW_STATE_DIR to a folder it can reach"
                )
        if not (self.data / "PG_VERSION").exists():
            pwfile = self.home / "pwfile"
            pwfile.write_text(self.settings.pg_password + "\n")
            pwfile.chmod(0o600)
            if self.run_as:
                chown_tree(self.home, self.run_as)
            done = subprocess.run(
                [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.settings.pg_user,
                 f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                 "-E", "UTF8", "--locale=C.UTF-8"],
                capture_output=True, text=True, check=False, user=self.run_as,
            )
            pwfile.unlink(missing_ok=True)
            if done.returncode != 0:
                raise StackError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")

    def command(self) -> list[str]:
        s = self.settings
        options = {
            "port": str(s.pg_port),
            "listen_addresses": s.pg_host,
            "unix_socket_directories": str(self.home / "run"),
            "shared_preload_libraries": "timescaledb",
            "timescaledb.telemetry_level": "off",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "timezone": "UTC",
            "log_timezone": "UTC",
            "log_line_prefix": "%m [%p] %q%u@%d ",
        }
        argv = [str(PG_BIN / "postgres"), "-D", str(self.data)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _connect(self, dbname: str) -> psycopg.Connection:
        s = self.settings
        return psycopg.connect(
            host=s.pg_host, port=s.pg_port, user=s.pg_user, password=s.pg_password,
            dbname=dbname, connect_timeout=3, autocommit=True,
        )

    def health(self) -> Health:
        try:
            with self._connect("postgres") as conn:
                row = conn.execute(
                    "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
                ).fetchone()
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.settings.pg_database,)
                ).fetchone()
        except psycopg.Error as exc:
            return Health(False, f"not accepting connections: {str(exc).strip()[:120]}")
        if row is None:
            return Health(False, "timescaledb extension not available to the server")
        if exists is None:
            return Health(True, f"timescaledb {row[0]} available; database not created yet")
        with self._connect(self.settings.pg_database) as conn:
            ext = conn.execute(
                "SELECT extversion, current_setting('timescaledb.license', true) "
                "FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
        if ext is None:
            return Health(True, f"timescaledb {row[0]} available; not created in the database")
        return Health(True, f"timescaledb {ext[0]} ({ext[1]} edition)")

    def ensure_database(self) -> None:
        """Create the role's database and the extension in it (idempotent)."""
        from psycopg import sql

        db = self.settings.pg_database
        with self._connect("postgres") as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if found.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        with self._connect(db) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back clients, checkpoint, exit.
        import signal

        from meterflow.stack.process import terminate

        pid = self.pid()
        if pid is not None:
            terminate(pid, sig=signal.SIGINT)
        self.pid_file.unlink(missing_ok=True)
