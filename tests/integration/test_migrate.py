"""`meterflow db migrate` against the real database: records, re-runs, refuses edits."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from meterflow.db.migrate import SQL_DIR, MigrationError, migrate

pytestmark = pytest.mark.integration


def test_migrate_applies_once_then_refuses_an_edited_file(fresh_db: str, tmp_path: Path) -> None:
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    applied = migrate(fresh_db, tmp_path / "sql")
    assert applied[0].version == 1
    assert migrate(fresh_db, tmp_path / "sql") == []
    with psycopg.connect(fresh_db) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in applied]

    first = sorted((tmp_path / "sql").glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(fresh_db, tmp_path / "sql")


def test_failing_migration_rolls_back_and_names_the_file(fresh_db: str, tmp_path: Path) -> None:
    (tmp_path / "0001_bad.sql").write_text("CREATE TABLE t (a int);\nSELECT no_such_function();")
    with pytest.raises(MigrationError, match=r"0001_bad\.sql failed"):
        migrate(fresh_db, tmp_path)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
