"""The operators' web console under ``/console`` (docs/console.md, docs/decisions/console.md).

Pages are rendered on the server (Jinja2: layout, both languages, labels, and only the
actions the signed-in role may take); the data on them and every action come from the
operators' API (``/api/v1``) itself, called by the page with the session cookie and its
CSRF token, so the console has the API's roles, scopes, audit and errors and no rules of
its own.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from meterflow.console.pages import router
from meterflow.settings import Settings

PREFIX = "/console"
STATIC = Path(__file__).parent / "static"


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the console's pages and its static assets on the API's app."""
    app.state.console_secure_cookie = settings.console_secure_cookie
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC, check_dir=False),
              name="console-static")
    app.include_router(router, prefix=PREFIX, include_in_schema=False)
