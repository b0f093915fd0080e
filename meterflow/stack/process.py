"""Starting, watching and stopping one local service process.

Each service runs in its own session (process group) so that ``down`` can stop it and every
child it spawned. Its pid is kept in ``<state>/run/<name>.pid`` and its output goes to
``<state>/logs/<name>.log``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A service could not be prepared, started or checked; the message says what to do."""


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    cwd: Path,
    user: str | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``argv`` detached in a new session, output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                env={**os.environ, **(env or {})},
            )
        except FileNotFoundError as exc:
            raise StackError(f"cannot start {argv[0]}: not installed (scripts/setup.sh)") from exc
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def terminate(pid: int, *, sig: int = signal.SIGTERM, grace_s: float = 30.0) -> None:
    """Signal the process group of ``pid``, wait, then kill what is left."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    check: Callable[[], Health], *, timeout_s: float, alive: Callable[[], bool]
) -> Health:
    """Poll ``check`` until healthy, the timeout passes, or the process dies."""
    deadline = time.monotonic() + timeout_s
    last = Health(False, "not checked yet")
    while time.monotonic() < deadline:
        last = check()
        if last.healthy:
            return last
        if not alive():
            return Health(False, f"process exited ({last.detail})")
        time.sleep(0.3)
    return Health(False, f"not healthy after {timeout_s:.0f}s ({last.detail})")


def service_user(preferred: str) -> str | None:
    """The account to run a daemon that refuses root (PostgreSQL) under; None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(preferred)
    except KeyError as exc:
        raise StackError(
            f"running as root but the system user {preferred!r} does not exist "
            "(install the Debian package, run scripts/setup.sh)"
        ) from exc
    return preferred


def chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def tail(path: Path, lines: int) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 256 * 1024))
        data = fh.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:])
