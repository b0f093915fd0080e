"""Settings handed to a child process keep their meaning in another working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterflow.settings import Settings


def test_relative_paths_reach_a_child_as_absolute_paths(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = Settings.model_validate({"state_dir": ".stack"}).as_env()
    assert env["METERFLOW_STATE_DIR"] == str(tmp_path / ".stack")
    assert Path(env["METERFLOW_STATE_DIR"]).is_absolute()


def test_the_report_zone_is_an_iana_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """METERFLOW_REPORT_TIMEZONE (docs/operations.md#report-time-zones)."""
    monkeypatch.delenv("METERFLOW_REPORT_TIMEZONE", raising=False)
    assert Settings().report_timezone == "Asia/Shanghai"
    monkeypatch.setenv("METERFLOW_REPORT_TIMEZONE", "Europe/Berlin")
    assert Settings().report_timezone == "Europe/Berlin"
    monkeypatch.setenv("METERFLOW_REPORT_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError, match="not an IANA time zone"):
        Settings()
