from __future__ import annotations

from pathlib import Path

import pytest

from meterflow.db.migrate import SQL_DIR, Migration, MigrationError, check, discover


def write(tmp: Path, name: str, sql: str) -> None:
    (tmp / name).write_text(sql)


def test_shipped_migrations_are_numbered_and_discoverable() -> None:
    migrations = discover(SQL_DIR)
    assert migrations, "sql/ holds the schema"
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    assert migrations[0].version == 1


def test_discover_orders_by_version_and_reads_no_transaction_marker(tmp_path: Path) -> None:
    write(tmp_path, "0002_b.sql", "-- meterflow: no-transaction\nSELECT 2;")
    write(tmp_path, "0001_a.sql", "SELECT 1;")
    first, second = discover(tmp_path)
    assert (first.version, first.transactional) == (1, True)
    assert (second.version, second.transactional) == (2, False)


@pytest.mark.parametrize("name", ["1_a.sql", "0001-a.sql", "0001_A.sql"])
def test_badly_named_file_is_refused(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_description"):
        discover(tmp_path)


def test_duplicate_version_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "SELECT 1;")
    write(tmp_path, "0001_b.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="also used by"):
        discover(tmp_path)


def m(version: int, sql: str) -> Migration:
    return Migration(version, f"m{version}", Path(f"{version:04d}_m{version}.sql"), sql)


def test_check_returns_pending_in_order() -> None:
    a, b, c = m(1, "a"), m(2, "b"), m(3, "c")
    assert check([a, b, c], {1: ("m1", a.checksum)}) == [b, c]


def test_check_refuses_changed_applied_file() -> None:
    with pytest.raises(MigrationError, match="changed after it was applied"):
        check([m(1, "edited")], {1: ("m1", m(1, "original").checksum)})


def test_check_refuses_vanished_applied_file() -> None:
    with pytest.raises(MigrationError, match="is missing from sql/"):
        check([m(2, "b")], {1: ("m1", "abc")})
