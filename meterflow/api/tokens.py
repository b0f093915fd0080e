"""API users and bearer tokens, without HTTP (the CLI bootstraps an admin with these).

A token is ``mf_<token id, 16 hex>_<secret, 256 random bits>``; only its SHA-256 is stored,
so a stolen database does not yield usable tokens, and the token is shown once, when it
is made. A high-entropy random secret needs no slow password hash: SHA-256 of it cannot be
reversed by guessing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import psycopg

ROLES = ("admin", "operator", "finance", "maintenance", "viewer")
NAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
TOKEN = re.compile(r"mf_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")


class UserError(ValueError):
    """A user or token request that cannot be done; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a user with a role, through a token (None: the server CLI)."""

    user_id: int | None
    name: str
    role: str
    token_id: str | None = None


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


def create_token(conn: psycopg.Connection, user_name: str, label: str = "") -> tuple[str, str]:
    """A new token for a user: ``(token_id, token)``; the token is not stored."""
    user = user_row(conn, user_name)
    if user is None:
        raise UserError("user", f"no user {user_name!r}", 404)
    if len(label) > 200 or "\x00" in label:
        raise UserError("label", "at most 200 characters, no NUL")
    token_id, token = new_token()
    conn.execute("INSERT INTO api_tokens (token_id, user_id, token_sha256, label) "
                 "VALUES (%s, %s, %s, %s)", (token_id, user[0], token_hash(token), label))
    return token_id, token


def authenticate(conn: psycopg.Connection, token: str) -> Actor | None:
    """The actor of a valid token of an enabled user, or None."""
    if not TOKEN.fullmatch(token):
        return None
    row = conn.execute(
        "SELECT u.user_id, u.name, u.role, t.token_id FROM api_tokens t "
        "JOIN api_users u USING (user_id) WHERE t.token_sha256 = %s "
        "AND t.revoked_at IS NULL AND NOT u.disabled", (token_hash(token),)).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE token_id = %s AND "
                 "(last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                 (row[3],))
    return Actor(int(row[0]), str(row[1]), str(row[2]), str(row[3]))
