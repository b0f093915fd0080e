"""The local stack's broker sync: ``meterflow broker sync`` as a service of the stack.

It keeps Mosquitto's password and ACL files equal to the database and reloads the broker
on every change (:mod:`meterflow.broker.sync`). It has no port; it is healthy while it
runs and its status file says it rendered the files or waits for the schema.
"""

from __future__ import annotations

import json
import sys

from meterflow.settings import Settings
from meterflow.stack.mosquitto import auth_target
from meterflow.stack.process import Health, spawn, wait_until
from meterflow.stack.service import Service


class BrokerSync(Service):
    name = "broker-sync"
    port_env = ""
    start_timeout_s = 20.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.target = auth_target(settings)

    @property
    def port(self) -> int:
        return 0

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "meterflow.cli", "broker", "sync"]

    def start(self) -> Health:
        """Start when not running (idempotent) and wait until it reported once."""
        if self.pid() is None:
            self.prepare()
            self.target.status.unlink(missing_ok=True)
            spawn(self.command(), log_file=self.log_file, pid_file=self.pid_file,
                  cwd=self.home, env=self.settings.as_env())
        health = wait_until(self.health, timeout_s=self.start_timeout_s,
                            alive=lambda: self.pid() is not None)
        if not health.healthy:
            return Health(False, f"{health.detail}; read {self.log_file}")
        return health

    def health(self) -> Health:
        try:
            status = json.loads(self.target.status.read_text())
        except (OSError, ValueError):
            return Health(False, "no status yet")
        error = str(status.get("error", ""))
        if error.startswith("waiting for the schema"):
            return Health(True, error)
        if error:
            return Health(False, error)
        return Health(True, f"{status.get('users')} user(s), {status.get('rules')} rule(s) "
                            f"as of {status.get('snapshot_at')}")
