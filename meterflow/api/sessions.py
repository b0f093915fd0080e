"""Staff passwords and browser sessions for the web console (sql/0012_console.sql).

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
option); a hash made with older parameters is upgraded at the next sign-in. A session is a
random cookie value of 256 bits; only its SHA-256 is stored, with the synchronizer CSRF
token that every state-changing request of the session must echo in ``X-CSRF-Token``
(OWASP CSRF Prevention Cheat Sheet, "Synchronizer Token Pattern"). A session ends at
sign-out, after ``idle_s`` without a request, or ``max_s`` after it began; a disabled user's
sessions end at once. Nothing is cached: every request reads the row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cache

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from meterflow.api.scope import EVERYTHING, Scope
from meterflow.api.tokens import Actor, UserError

COOKIE = "mf_session"
CSRF_HEADER = "X-CSRF-Token"
MIN_PASSWORD = 10
HASHER = PasswordHasher()


@cache
def _dummy() -> str:
    """Verified against when the user is unknown, so a wrong name costs as long as a wrong
    password (made on first use: every command line start need not pay for a hash)."""
    return HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle_s: int = 1800
    max_s: int = 43_200


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who, and the CSRF token its pages send back."""

    actor: Actor
    csrf_token: str


@dataclass(frozen=True, slots=True)
class NewSession:
    cookie: str
    session: Session


def session_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def check_password_rule(password: str) -> None:
    """A password is at least MIN_PASSWORD characters (NIST SP 800-63B 5.1.1.2 asks for
    length, not composition rules) and at most 256."""
    if not MIN_PASSWORD <= len(password) <= 256:
        raise UserError("password", f"must be {MIN_PASSWORD} to 256 characters long")


def set_password(conn: psycopg.Connection, name: str, password: str) -> None:
    """Store a new password hash for a user and end their sessions."""
    check_password_rule(password)
    row = conn.execute("UPDATE api_users SET password_hash = %s, password_set_at = now() "
                       "WHERE name = %s RETURNING user_id", (HASHER.hash(password), name)
                       ).fetchone()
    if row is None:
        raise UserError("user", f"no user {name!r}", 404)
    conn.execute("UPDATE console_sessions SET ended_at = now() WHERE user_id = %s "
                 "AND ended_at IS NULL", (row[0],))


def check_password(conn: psycopg.Connection, name: str, password: str) -> Actor | str:
    """The user's actor when the password is right, else the reason (for the audit): the
    answer to the browser is the same for every reason."""
    row = conn.execute("SELECT user_id, name, role, disabled, password_hash FROM api_users "
                       "WHERE name = %s", (name,)).fetchone()
    stored = row[4] if row is not None else None
    try:
        HASHER.verify(stored or _dummy(), password)
    except (VerificationError, InvalidHashError):
        return "wrong password" if stored else ("no password" if row else "unknown user")
    if row is None or stored is None:
        return "unknown user" if row is None else "no password"
    if row[3]:
        return "user disabled"
    if HASHER.check_needs_rehash(stored):
        conn.execute("UPDATE api_users SET password_hash = %s WHERE user_id = %s",
                     (HASHER.hash(password), row[0]))
    return Actor(int(row[0]), str(row[1]), str(row[2]))


def start(conn: psycopg.Connection, actor: Actor, address: str | None) -> NewSession:
    """A new session for a signed-in user."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute("INSERT INTO console_sessions (session_sha256, user_id, csrf_token, address) "
                 "VALUES (%s, %s, %s, %s)", (session_hash(cookie), actor.user_id, csrf,
                                             address))
    return NewSession(cookie, Session(actor, csrf))


def resume(conn: psycopg.Connection, cookie: str, policy: SessionPolicy) -> Session | None:
    """The live session of a cookie (and mark it seen), or None when it ended or idled out."""
    if not cookie or len(cookie) > 128:
        return None
    row = conn.execute(
        "UPDATE console_sessions s SET last_seen_at = now() FROM api_users u "
        "WHERE s.session_sha256 = %s AND u.user_id = s.user_id AND s.ended_at IS NULL "
        "AND NOT u.disabled AND s.last_seen_at > now() - make_interval(secs => %s) "
        "AND s.created_at > now() - make_interval(secs => %s) "
        "RETURNING u.user_id, u.name, u.role, s.csrf_token, "
        "array(SELECT site_id FROM api_user_scopes c WHERE c.user_id = u.user_id "
        "AND site_id IS NOT NULL), "
        "array(SELECT building_id FROM api_user_scopes c WHERE c.user_id = u.user_id "
        "AND building_id IS NOT NULL)",
        (session_hash(cookie), policy.idle_s, policy.max_s)).fetchone()
    if row is None:
        return None
    user_id, name, role, csrf, sites, buildings = row
    scope = EVERYTHING if role == "admin" else Scope.of(list(sites), list(buildings))
    return Session(Actor(int(user_id), str(name), str(role), None, scope), str(csrf))


def csrf_matches(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(session.csrf_token, given)


def end(conn: psycopg.Connection, cookie: str) -> None:
    """Sign out: the session ends now."""
    conn.execute("UPDATE console_sessions SET ended_at = now() WHERE session_sha256 = %s "
                 "AND ended_at IS NULL", (session_hash(cookie),))
    conn.execute("DELETE FROM console_sessions WHERE last_seen_at < now() - interval '30 days'")
