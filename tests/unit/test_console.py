"""The web console without services: texts in both languages for every key the pages
use, the language choice, the sign-in's redirect target, passwords, CSRF tokens, and the
actions each role is shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st

from meterflow.api import sessions
from meterflow.api.auth import PERMISSIONS
from meterflow.api.tokens import ROLES, Actor, UserError
from meterflow.console import i18n
from meterflow.console.pages import SCREENS, _next, _secure
from meterflow.console.render import render

CONSOLE = Path(__file__).resolve().parents[2] / "meterflow" / "console"
SOURCES = [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("static/*.js"),
           *CONSOLE.glob("static/pages/*.js")]
# Families of keys the pages build from a value (t(`op.${action}`)): every value they get.
FAMILIES = {
    "op": ("topup", "refund", "adjustment", "charge", "set_tariff", "set_thresholds",
           "disconnect", "reconnect"),
    "status": ("pending", "sent", "applied", "failed", "expired", "recorded", "published",
               "refused", "saved"),
    "state": ("normal", "alarm", "disconnected", "cut_requested", "keep", "offline"),
    "role": ROLES, "commodity": ("electricity", "water"), "supply": ("connected",
                                                                      "disconnected"),
    "origin": ("wallet", "operator"), "kind": ("flat", "tou", "tiered", "invalid"),
    "batch": ("scheduled", "running", "done", "cancelled", "pending", "failed"),
    "note": ("pending", "held", "delivered", "failed"), "meter": ("commodity", "protocol"),
    "page": tuple(SCREENS),
    "room.confirm": ("topup", "refund", "disconnect", "reconnect", "keep_on", "keep_off",
                     "thresholds", "tariff"),
    "signin.error": ("wrong", "csrf", "throttled"),
}


def used_keys() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        text = path.read_text()
        found |= set(re.findall(r"""\bt\(\s*["']([a-z_]+(?:\.[a-z_0-9]+)+)["']""", text))
    return found


def test_every_key_has_both_languages() -> None:
    for key, (english, chinese) in i18n.MESSAGES.items():
        assert english.strip() and chinese.strip(), key
        assert sorted(re.findall(r"{\w+}", english)) == sorted(re.findall(r"{\w+}", chinese)), key


def test_every_key_the_pages_use_is_there() -> None:
    keys = used_keys()
    assert len(keys) > 150  # the scan finds the pages' keys
    assert sorted(keys - set(i18n.MESSAGES)) == []
    for family, values in FAMILIES.items():
        for value in values:
            assert f"{family}.{value}" in i18n.MESSAGES, f"{family}.{value}"


def test_texts_of_a_language() -> None:
    assert i18n.texts("en")["page.rooms"] == "Rooms"
    assert i18n.texts("zh-CN")["page.rooms"] == "房间监控"


@pytest.mark.parametrize("cookie, accept, chosen", [
    ("en", "zh-CN,zh;q=0.9", "en"),
    (None, "en-GB,en;q=0.9,zh;q=0.8", "en"),
    (None, "de-DE,zh-TW;q=0.5,en;q=0.4", "zh-CN"),
    (None, "en;q=0.2,zh;q=0.8", "zh-CN"),
    (None, "zh;q=0,en;q=0.1", "en"),
    (None, "fr", "zh-CN"),
    (None, None, "zh-CN"),
    ("klingon", "en;q=bad", "zh-CN"),
])
def test_the_language_choice(cookie: str | None, accept: str | None, chosen: str) -> None:
    assert i18n.choose_language(cookie, accept) == chosen


@given(st.text(max_size=60))
def test_any_accept_language_gives_a_supported_language(accept: str) -> None:
    assert i18n.choose_language(None, accept) in i18n.LANGUAGES


@pytest.mark.parametrize("target, followed", [
    ("/console/rooms/R-1?x=1", "/console/rooms/R-1?x=1"),
    ("https://evil.example/console/", "/console/rooms"),
    ("//evil.example/console/x", "/console/rooms"),
    ("/console//evil.example", "/console/rooms"),
    ("/api/v1/me", "/console/rooms"),
    (None, "/console/rooms"),
])
def test_only_a_console_path_is_followed_after_sign_in(target: str | None,
                                                       followed: str) -> None:
    assert _next(target) == followed


def test_a_password_is_long_enough_and_hashed_with_argon2id() -> None:
    with pytest.raises(UserError, match="password"):
        sessions.check_password_rule("short")
    with pytest.raises(UserError, match="password"):
        sessions.check_password_rule("x" * 257)
    sessions.check_password_rule("correct horse battery")
    hashed = sessions.HASHER.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert sessions.HASHER.verify(hashed, "correct horse battery")


def test_the_csrf_token_must_match_exactly() -> None:
    session = sessions.Session(Actor(1, "a", "operator"), "t" * 43)
    assert sessions.csrf_matches(session, "t" * 43)
    for given_token in (None, "", "t" * 42, "T" * 43):
        assert not sessions.csrf_matches(session, given_token)
    assert sessions.session_hash("abc") == sessions.session_hash("abc")
    assert len(sessions.session_hash("abc")) == 64


def test_every_screen_needs_a_known_permission() -> None:
    assert all(permission in PERMISSIONS for _, permission in SCREENS.values())


def page_for(role: str, screen: str, lang: str = "en") -> str:
    can = {p: role in holders for p, holders in PERMISSIONS.items()}
    template, permission = SCREENS[screen]
    return render(template, lang, 200, screen=screen, user="u", role=role, can=can,
                  csrf="c" * 43, params={"room_id": "R-1"}, allowed_here=can[permission],
                  path=f"/console/{screen}", permissions=PERMISSIONS, roles=ROLES
                  ).body.decode()


@pytest.mark.parametrize("role", ROLES)
def test_a_room_page_offers_only_what_the_role_may_do(role: str) -> None:
    html = page_for(role, "room")
    shown = {"topup": 'id="topup-form"' in html, "refund": 'id="refund-form"' in html,
             "control": 'id="disconnect"' in html,
             "accounts.write": 'id="thresholds-form"' in html,
             "tariffs.write": 'id="tariff-form"' in html}
    assert shown == {p: role in PERMISSIONS[p] for p in shown}


@pytest.mark.parametrize("role", ROLES)
def test_the_menu_lists_only_the_screens_the_role_may_open(role: str) -> None:
    html = page_for(role, "rooms")
    for screen, (_, permission) in SCREENS.items():
        if screen != "room":
            assert (f'href="/console/{screen}"' in html) == (role in PERMISSIONS[permission])


def test_a_page_the_role_may_not_open_says_so_and_loads_no_script() -> None:
    html = page_for("maintenance", "finance")
    assert 'role="alert"' in html and "pages/finance.js" not in html


def test_pages_carry_a_strict_content_security_policy() -> None:
    response = render("signin.html", "zh-CN", 200, csrf="c", next="/console/rooms",
                      error=None, path="/console/login")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["Cache-Control"] == "no-store"
    assert 'lang="zh-CN"' in response.body.decode()


def test_the_page_context_cannot_break_out_of_its_script_element() -> None:
    can = dict.fromkeys(PERMISSIONS, True)
    html = render("rooms.html", "en", 200, screen="rooms", user="</script><b>", role="admin",
                  can=can, csrf="c", params={}, allowed_here=True, path="/console/rooms",
                  permissions=PERMISSIONS, roles=ROLES).body.decode()
    assert "</script><b>" not in html


def request_to(scheme: str, chosen: bool | None) -> Request:
    app = FastAPI()
    app.state.console_secure_cookie = chosen
    return Request({"type": "http", "scheme": scheme, "method": "GET", "path": "/console/login",
                    "headers": [], "query_string": b"", "server": ("h", 443), "app": app})


@pytest.mark.parametrize("scheme, chosen, secure", [
    ("https", None, True), ("http", None, False), ("http", True, True), ("https", False, False),
])
def test_the_session_cookie_is_secure_over_https_or_when_set(scheme: str, chosen: bool | None,
                                                             secure: bool) -> None:
    assert _secure(request_to(scheme, chosen)) is secure
