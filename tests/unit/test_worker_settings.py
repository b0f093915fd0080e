"""Settings a pod needs from the worker: bind host, standby replicas, SQL folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterflow.cli import _register, app
from meterflow.settings import Settings
from pipeline.app import create_app


def test_worker_binds_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKER_WEB_HOST", "TABLE_STANDBY_REPLICAS"):
        monkeypatch.delenv(f"METERFLOW_{name}", raising=False)
    faust_app = create_app(Settings())
    assert (faust_app.conf.web_bind, faust_app.conf.table_standby_replicas) == ("127.0.0.1", 1)


def test_pod_settings_reach_the_faust_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERFLOW_WORKER_WEB_HOST", "0.0.0.0")
    monkeypatch.setenv("METERFLOW_TABLE_STANDBY_REPLICAS", "2")
    monkeypatch.setenv("METERFLOW_WORKER_WEB_PORT", "8081")
    conf = create_app(Settings(), role="processor").conf
    assert (conf.web_bind, conf.web_port, conf.table_standby_replicas) == ("0.0.0.0", 8081, 2)


def test_negative_standby_replicas_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERFLOW_TABLE_STANDBY_REPLICAS", "-1")
    with pytest.raises(ValueError, match="table_standby_replicas"):
        Settings()


def test_db_wait_reads_the_sql_folder_it_is_given(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "0001_first.sql").write_text("SELECT 1;\n")
    (tmp_path / "bad name.sql").write_text("SELECT 1;\n")
    monkeypatch.setenv("METERFLOW_SQL_DIR", str(tmp_path))
    monkeypatch.setenv("METERFLOW_PG_DSN", "host=127.0.0.1 port=1 connect_timeout=1")
    _register()
    result = CliRunner().invoke(app, ["db", "wait", "--timeout", "0"])
    # the folder is read before the database is asked: the badly named file is named
    assert result.exit_code == 1
    assert "bad name.sql" in result.output and "cannot read the migrations" in result.output
