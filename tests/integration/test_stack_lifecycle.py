"""`up` is idempotent and `down` leaves no process behind (a stack of its own)."""

from __future__ import annotations

import pytest

from meterflow.settings import Settings
from meterflow.stack import local
from meterflow.stack.process import pid_alive
from meterflow.stack.service import port_open

from .conftest import PORT_BASE, ports, state_root

pytestmark = pytest.mark.integration


def test_up_twice_then_down_stops_everything() -> None:
    own = ports(PORT_BASE + 1000)
    own.pop("worker_web_port")
    settings = Settings.model_validate({"state_dir": state_root() / "lifecycle", **own})
    try:
        first = {row.name: row.pid for row in local.up(settings)}
        assert all(first.values())
        second = {row.name: row.pid for row in local.up(settings)}
        assert second == first, "a second `up` must reuse the running services"
    finally:
        local.down(settings)
    for name, pid in first.items():
        assert pid is not None and not pid_alive(pid), f"{name} (pid {pid}) still running"
    for port in own.values():
        assert not port_open("127.0.0.1", port), f"port {port} still open"
    assert all(not row.health.healthy and row.pid is None for row in local.status(settings))
