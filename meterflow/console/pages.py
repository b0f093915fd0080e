"""The console's routes: sign-in and sign-out, the language switch, and one page per
screen. Handlers only check the session and render; the page's script reads and changes
everything through ``/api/v1`` (docs/console.md)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import quote

import psycopg
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from meterflow.api import audit, sessions, throttle
from meterflow.api.auth import (
    PERMISSIONS,
    allowed,
    client_address,
    refuse_token,
    request_id,
    session_of,
)
from meterflow.api.db import connection
from meterflow.api.tokens import ROLES, AuthFailure
from meterflow.console.i18n import LANGUAGES, choose_language
from meterflow.console.render import render

router = APIRouter()
LOGIN_CSRF = "mf_login_csrf"
LANG_COOKIE = "mf_lang"
# Screens: the URL name, the template, the permission needed to see it.
SCREENS: dict[str, tuple[str, str]] = {
    "rooms": ("rooms.html", "read"),
    "room": ("room.html", "read"),
    "open": ("open.html", "accounts.write"),
    "tariffs": ("tariffs.html", "read"),
    "batches": ("batches.html", "read"),
    "finance": ("finance.html", "finance.read"),
    "alarms": ("alarms.html", "read"),
    "users": ("users.html", "users"),
    "audit": ("audit.html", "audit.read"),
}
Conn = Annotated[psycopg.Connection, Depends(connection)]


def _secure(request: Request) -> bool:
    """The session cookie is Secure when set so, or when the request came over HTTPS."""
    chosen = getattr(request.app.state, "console_secure_cookie", None)
    return bool(chosen) if chosen is not None else request.url.scheme == "https"


def _next(target: str | None) -> str:
    """Only a console path is followed after sign-in (no open redirect)."""
    if target and target.startswith("/console/") and not target.startswith("/console//"):
        return target
    return "/console/rooms"


def _to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(here)}", status_code=303)


def _page(request: Request, conn: psycopg.Connection, screen: str,
          params: dict[str, Any] | None = None) -> Response:
    session = session_of(request, conn)
    if session is None:
        return _to_login(request)
    template, permission = SCREENS[screen]
    lang = choose_language(request.cookies.get(LANG_COOKIE),
                           request.headers.get("Accept-Language"))
    role = session.actor.role
    can = {p: allowed(role, p) for p in PERMISSIONS}
    status = 200 if can[permission] else 403
    return render(template, lang, status, screen=screen, user=session.actor.name, role=role,
                  can=can, csrf=session.csrf_token, params=params or {},
                  allowed_here=can[permission], path=request.url.path,
                  permissions=PERMISSIONS, roles=ROLES)


@router.get("/", response_class=HTMLResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/console/rooms", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    token = secrets.token_urlsafe(32)
    lang = choose_language(request.cookies.get(LANG_COOKIE),
                           request.headers.get("Accept-Language"))
    response = render("signin.html", lang, 200, csrf=token, next=_next(next), error=None,
                      path=request.url.path)
    response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict",
                        secure=_secure(request), path="/console/login")
    return response


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, conn: Conn, username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=256)],
          csrf: Annotated[str, Form(max_length=128)],
          next: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Sign in: the throttle and the audit of failed authentication apply as for tokens."""
    lang = choose_language(request.cookies.get(LANG_COOKIE),
                           request.headers.get("Accept-Language"))

    def refused(error: str, status: int, headers: dict[str, str] | None = None) -> Response:
        token = secrets.token_urlsafe(32)
        response = render("signin.html", lang, status, csrf=token, next=_next(next),
                          error=error, path=request.url.path)
        response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict",
                            secure=_secure(request), path="/console/login")
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    expected = request.cookies.get(LOGIN_CSRF, "")
    if not expected or not secrets.compare_digest(expected, csrf):
        return refused("signin.error.csrf", 403)
    address = client_address(request)
    block = throttle.blocked(conn, throttle.keys(address, username))
    if block is not None:
        return refused("signin.error.throttled", 429, {"Retry-After": str(block.retry_after_s)})
    actor = sessions.check_password(conn, username, password)
    if isinstance(actor, str):
        refuse_token(conn, request, AuthFailure(actor, username or None))
        return refused("signin.error.wrong", 401)
    with conn.transaction():
        throttle.succeeded(conn, throttle.Key("user", username))
        made = sessions.start(conn, actor, address)
        audit.record(conn, actor, request_id(request), "auth.signin", f"user:{actor.name}",
                     None, {"address": address})
    response = RedirectResponse(_next(next), status_code=303)
    response.set_cookie(sessions.COOKIE, made.cookie, httponly=True, samesite="lax",
                        secure=_secure(request), path="/")
    response.delete_cookie(LOGIN_CSRF, path="/console/login")
    return response


@router.post("/logout")
def logout(request: Request, conn: Conn,
           csrf: Annotated[str, Form(max_length=128)]) -> Response:
    """Sign out (a form with the session's CSRF token); the session ends in the database."""
    session = session_of(request, conn)
    if session is not None and sessions.csrf_matches(session, csrf):
        with conn.transaction():
            sessions.end(conn, request.cookies.get(sessions.COOKIE, ""))
            audit.record(conn, session.actor, request_id(request), "auth.signout",
                         f"user:{session.actor.name}", None, None)
    elif session is not None:
        return Response("CSRF token missing or wrong", status_code=403)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


@router.get("/lang/{code}")
def language(code: str, next: str | None = None) -> Response:
    """Switch the language (a preference only; nothing is changed on the server)."""
    response = RedirectResponse(_next(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, samesite="lax", max_age=365 * 86400, path="/")
    return response


@router.get("/rooms", response_class=HTMLResponse)
def rooms(request: Request, conn: Conn) -> Response:
    return _page(request, conn, "rooms")


@router.get("/rooms/{room_id}", response_class=HTMLResponse)
def room(request: Request, conn: Conn, room_id: str) -> Response:
    return _page(request, conn, "room", {"room_id": room_id[:64]})


for _screen in ("open", "tariffs", "batches", "finance", "alarms", "users", "audit"):
    def _handler(request: Request, conn: Conn, _name: str = _screen) -> Response:
        return _page(request, conn, _name)

    router.add_api_route(f"/{_screen}", _handler, methods=["GET"],
                         response_class=HTMLResponse, name=f"console-{_screen}")
