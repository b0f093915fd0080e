"""Provision the data source, the folder and every board through Grafana's HTTP API.

Idempotent, by uid: the data source is read (``GET /api/datasources/uid/{uid}``) and then
created (``POST /api/datasources``) or updated in place (``PUT /api/datasources/uid/{uid}``);
the folder is read (``GET /api/folders/{uid}``) and created when missing
(``POST /api/folders``); each board is saved with ``POST /api/dashboards/db`` and
``overwrite: true``, which replaces the board of the same uid. The token is sent as a
bearer token (a service account token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meterflow.dashboards import BOARDS
from meterflow.dashboards.provision import FOLDER_TITLE, FOLDER_UID
from meterflow.dashboards.spec import Board, render


class PushError(RuntimeError):
    """Grafana could not be reached or refused a request; the message says which."""


@dataclass
class PushReport:
    datasource: str = ""  # "created" or "updated"
    folder: str = ""  # "created" or "kept"
    boards: list[tuple[str, int]] = field(default_factory=list)  # (uid, version)


def _explain(exc: Exception, url: str, what: str) -> PushError:
    from grafana_client.client import GrafanaClientError, GrafanaException

    if isinstance(exc, GrafanaClientError) and exc.status_code == 401:
        return PushError(f"Grafana at {url} refused the token (401) while {what}")
    if isinstance(exc, GrafanaClientError) and exc.status_code == 403:
        return PushError(f"the token may not do this (403) while {what}: {exc.message}")
    if isinstance(exc, GrafanaException):
        return PushError(f"Grafana at {url} answered {exc.status_code} while {what}: "
                         f"{exc.message}")
    return PushError(f"Grafana at {url} is unreachable ({exc.__class__.__name__}: {exc})")


def _not_found(exc: Exception) -> bool:
    from grafana_client.client import GrafanaClientError

    return isinstance(exc, GrafanaClientError) and exc.status_code == 404


def push(url: str, token: str, datasource: dict[str, Any], boards: tuple[Board, ...] = BOARDS,
         folder_uid: str = FOLDER_UID, folder_title: str = FOLDER_TITLE,
         step: Callable[[str], None] = lambda _: None, timeout_s: float = 10.0) -> PushReport:
    """Create or update the data source, the folder and the boards; ``step`` is told what
    is being done (for a progress display)."""
    import requests
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    report = PushReport()
    failures = (GrafanaException, requests.exceptions.RequestException, OSError)
    uid = datasource["uid"]

    step("data source")
    try:
        try:
            api.datasource.get_datasource_by_uid(uid)
            exists = True
        except failures as exc:
            if not _not_found(exc):
                raise
            exists = False
        if exists:
            api.datasource.update_datasource_by_uid(uid, datasource)
            report.datasource = "updated"
        else:
            api.datasource.create_datasource(datasource)
            report.datasource = "created"
    except failures as exc:
        raise _explain(exc, url, "saving the data source") from exc

    step("folder")
    try:
        try:
            api.folder.get_folder(folder_uid)
            report.folder = "kept"
        except failures as exc:
            if not _not_found(exc):
                raise
            api.folder.create_folder(folder_title, uid=folder_uid)
            report.folder = "created"
    except failures as exc:
        raise _explain(exc, url, "saving the folder") from exc

    for board in boards:
        step(board.title)
        payload = {"dashboard": {**render(board), "id": None}, "folderUid": folder_uid,
                   "overwrite": True, "message": "meterflow dashboards push"}
        try:
            answer = api.dashboard.update_dashboard(payload)
        except failures as exc:
            raise _explain(exc, url, f"saving board {board.uid}") from exc
        version = answer.get("version", 0) if isinstance(answer, dict) else 0
        report.boards.append((board.uid, int(version)))
    return report
