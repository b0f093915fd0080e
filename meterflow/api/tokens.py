"""API users and bearer tokens, without HTTP (the CLI bootstraps an admin with these).

A token is ``mf_<token id, 16 hex>_<secret, 256 random bits>``; only its SHA-256 is stored,
so a stolen database does not yield usable tokens, and the token is shown once, when it
is made. A high-entropy random secret needs no slow password hash: SHA-256 of it cannot be
reversed by guessing. Tokens expire (``METERFLOW_API_TOKEN_TTL_DAYS``, 90 by default),
can be rotated (a new token, the old one revoked at once or after a grace period) and
record when and from where they were last used (to the minute). A revoked or expired token,
or one of a disabled user, is refused on the next request: nothing is cached.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from contracts.errors import RefusedRequest
from meterflow.api.scope import EVERYTHING, Scope

ROLES = ("admin", "operator", "finance", "maintenance", "viewer")
NAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
TOKEN = re.compile(r"mf_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")
TOKEN_ID = re.compile(r"mf_([0-9a-f]{16})_")


class UserError(RefusedRequest):
    """A user or token request that cannot be done; ``field`` names the culprit."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a user with a role, through a token (None: the server CLI), and
    the scope they are limited to."""

    user_id: int | None
    name: str
    role: str
    token_id: str | None = None
    scope: Scope = field(default=EVERYTHING, compare=False)


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a token was refused, and whose it claimed to be (for the audit and throttle)."""

    reason: str  # malformed, unknown, wrong secret, revoked, expired, user disabled
    user: str | None = None
    token_id: str | None = None

    @property
    def answer(self) -> str:
        """What the client is told: only the token's holder learns that it expired or was
        revoked (the secret matched); anything else is unknown."""
        if self.reason in ("revoked", "expired", "user disabled"):
            return f"token {self.reason}: ask an admin for a new one"
        return "unknown or malformed token"


@dataclass(frozen=True, slots=True)
class NewToken:
    token_id: str
    token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(token id, token): the id is public (listed, revoked by it), the token secret."""
    token_id = secrets.token_hex(8)
    return token_id, f"mf_{token_id}_{secrets.token_urlsafe(32)}"


def user_row(conn: psycopg.Connection, name: str) -> tuple[int, str, str, bool] | None:
    row = conn.execute("SELECT user_id, name, role, disabled FROM api_users WHERE name = %s",
                       (name,)).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), str(row[2]), bool(row[3]))


def add_user(conn: psycopg.Connection, name: str, role: str) -> tuple[int, bool]:
    """Create a user (``(user_id, created)``); the same name and role again is a no-op."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise UserError("name", f"{name!r} is not 1-64 of A-Z a-z 0-9 . _ @ -")
    if role not in ROLES:
        raise UserError("role", f"{role!r} is not one of {', '.join(ROLES)}")
    row = conn.execute("INSERT INTO api_users (name, role) VALUES (%s, %s) "
                       "ON CONFLICT (name) DO NOTHING RETURNING user_id", (name, role)).fetchone()
    if row is not None:
        return int(row[0]), True
    existing = user_row(conn, name)
    assert existing is not None
    if existing[2] != role:
        raise UserError("role", f"user {name} exists with role {existing[2]}; change it with "
                                "PATCH /api/v1/users/{name}", 409)
    return existing[0], False


def scope_of(conn: psycopg.Connection, user_id: int) -> Scope:
    rows = conn.execute("SELECT site_id, building_id FROM api_user_scopes WHERE user_id = %s",
                        (user_id,)).fetchall()
    return Scope.of([s for s, _ in rows if s], [b for _, b in rows if b])


def set_scope(conn: psycopg.Connection, user_id: int, role: str, sites: list[str],
              buildings: list[str]) -> Scope:
    """Replace a user's scope (empty lists: unrestricted). Admins are never limited."""
    if role == "admin" and (sites or buildings):
        raise UserError("role", "an admin is never limited to sites or buildings; give the "
                                "user another role to limit them")
    conn.execute("DELETE FROM api_user_scopes WHERE user_id = %s", (user_id,))
    for site in dict.fromkeys(sites):
        conn.execute("INSERT INTO api_user_scopes (user_id, site_id) VALUES (%s, %s)",
                     (user_id, site))
    for building in dict.fromkeys(buildings):
        conn.execute("INSERT INTO api_user_scopes (user_id, building_id) VALUES (%s, %s)",
                     (user_id, building))
    return Scope.of(sites, buildings)


def _lifetime(ttl_days: int | None, default_days: int, max_days: int) -> timedelta:
    days = default_days if ttl_days is None else ttl_days
    if not 1 <= days <= max_days:
        raise UserError("ttl_days", f"{days} is not 1..{max_days} days")
    return timedelta(days=days)


def create_token(conn: psycopg.Connection, user_name: str, label: str = "", *,
                 ttl_days: int | None = None, default_days: int = 90,
                 max_days: int = 365) -> NewToken:
    """A new token for a user; the token itself is not stored."""
    user = user_row(conn, user_name)
    if user is None:
        raise UserError("user", f"no user {user_name!r}", 404)
    if len(label) > 200 or "\x00" in label:
        raise UserError("label", "at most 200 characters, no NUL")
    lifetime = _lifetime(ttl_days, default_days, max_days)
    token_id, token = new_token()
    row = conn.execute("INSERT INTO api_tokens (token_id, user_id, token_sha256, label, "
                       "expires_at) VALUES (%s, %s, %s, %s, now() + %s) RETURNING expires_at",
                       (token_id, user[0], token_hash(token), label, lifetime)).fetchone()
    assert row is not None
    return NewToken(token_id, token, row[0])


def rotate_token(conn: psycopg.Connection, token_id: str, *, grace_s: int = 0,
                 ttl_days: int | None = None, default_days: int = 90,
                 max_days: int = 365) -> tuple[dict[str, object], NewToken]:
    """A new token for the same user and label; the old one is revoked now (``grace_s``
    0) or expires after ``grace_s`` seconds. Returns (the old token's row, the new one)."""
    old = conn.execute("SELECT t.token_id, u.name, t.label, t.revoked_at, t.expires_at, "
                       "t.rotated_to FROM api_tokens t JOIN api_users u USING (user_id) "
                       "WHERE t.token_id = %s FOR UPDATE OF t", (token_id,)).fetchone()
    if old is None:
        raise UserError("token_id", f"no token {token_id!r}", 404)
    if old[3] is not None or old[5] is not None:
        raise UserError("token_id", f"token {token_id} was already "
                        + ("revoked" if old[3] is not None else f"rotated to {old[5]}"), 409)
    made = create_token(conn, str(old[1]), str(old[2]), ttl_days=ttl_days,
                        default_days=default_days, max_days=max_days)
    after = conn.execute(
        "UPDATE api_tokens SET rotated_to = %s, "
        "revoked_at = CASE WHEN %s = 0 THEN now() ELSE revoked_at END, "
        "expires_at = CASE WHEN %s = 0 THEN expires_at "
        "ELSE least(expires_at, now() + make_interval(secs => %s)) END "
        "WHERE token_id = %s RETURNING token_id, revoked_at, expires_at, rotated_to",
        (made.token_id, grace_s, grace_s, grace_s, token_id)).fetchone()
    assert after is not None
    return {"token_id": after[0], "revoked_at": after[1], "expires_at": after[2],
            "rotated_to": after[3]}, made


def authenticate(conn: psycopg.Connection, token: str,
                 address: str | None = None) -> Actor | AuthFailure:
    """The actor of a valid token of an enabled user, or why it is refused."""
    if not TOKEN.fullmatch(token):
        claimed = TOKEN_ID.match(token)
        return AuthFailure("malformed", token_id=claimed.group(1) if claimed else None)
    token_id = token[3:19]
    row = conn.execute(
        "SELECT t.token_sha256, t.revoked_at IS NOT NULL, t.expires_at <= now(), u.user_id, "
        "u.name, u.role, u.disabled, "
        "array(SELECT site_id FROM api_user_scopes s WHERE s.user_id = u.user_id "
        "AND site_id IS NOT NULL), "
        "array(SELECT building_id FROM api_user_scopes s WHERE s.user_id = u.user_id "
        "AND building_id IS NOT NULL) "
        "FROM api_tokens t JOIN api_users u USING (user_id) WHERE t.token_id = %s",
        (token_id,)).fetchone()
    if row is None:
        return AuthFailure("unknown", token_id=token_id)
    stored, revoked, expired, user_id, name, role, disabled, sites, buildings = row
    if not hmac.compare_digest(str(stored), token_hash(token)):
        return AuthFailure("wrong secret", str(name), token_id)
    for refused, reason in ((revoked, "revoked"), (expired, "expired"),
                            (disabled, "user disabled")):
        if refused:
            return AuthFailure(reason, str(name), token_id)
    conn.execute("UPDATE api_tokens SET last_used_at = now(), last_used_from = %s "
                 "WHERE token_id = %s AND (last_used_at IS NULL OR last_used_at < now() - "
                 "interval '1 minute' OR last_used_from IS DISTINCT FROM %s)",
                 (address, token_id, address))
    scope = EVERYTHING if role == "admin" else Scope.of(list(sites), list(buildings))
    return Actor(int(user_id), str(name), str(role), token_id, scope)
