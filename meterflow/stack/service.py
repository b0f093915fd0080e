"""What every local service has: a name, a port, a log, a pid file, a health check."""

from __future__ import annotations

import abc
import socket
from dataclasses import dataclass
from pathlib import Path

from meterflow.settings import Settings
from meterflow.stack.process import Health, read_pid, spawn, terminate, wait_until


@dataclass(frozen=True)
class Status:
    name: str
    port: int
    pid: int | None
    health: Health
    log: Path


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class Service(abc.ABC):
    """A local service process managed from the state folder."""

    name: str
    port_env: str
    start_timeout_s: float = 60.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.state_dir.resolve()
        self.home = self.state / self.name
        self.log_file = self.state / "logs" / f"{self.name}.log"
        self.pid_file = self.state / "run" / f"{self.name}.pid"

    @property
    @abc.abstractmethod
    def port(self) -> int: ...

    @abc.abstractmethod
    def prepare(self) -> None:
        """Create configuration and data once; cheap when already done."""

    @abc.abstractmethod
    def command(self) -> list[str]: ...

    @abc.abstractmethod
    def health(self) -> Health: ...

    run_as: str | None = None

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def start(self) -> Health:
        """Start when not running (idempotent) and wait until healthy."""
        if self.pid() is None:
            host = self.host
            if port_open(host, self.port):
                return Health(
                    False,
                    f"port {host}:{self.port} is taken by another process; "
                    f"set {self.port_env} to a free port",
                )
            self.prepare()
            spawn(
                self.command(),
                log_file=self.log_file,
                pid_file=self.pid_file,
                cwd=self.home,
                user=self.run_as,
            )
        health = wait_until(
            self.health, timeout_s=self.start_timeout_s, alive=lambda: self.pid() is not None
        )
        if not health.healthy:
            return Health(False, f"{health.detail}; read {self.log_file}")
        return health

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> Status:
        pid = self.pid()
        health = self.health() if pid is not None else Health(False, "not running")
        return Status(self.name, self.port, pid, health, self.log_file)

    @property
    def host(self) -> str:
        return "127.0.0.1"
