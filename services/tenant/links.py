"""Tenant access links: a random token per link, kept only as its sha256, naming one
account, with an expiry; staff revoke them (docs/tenant.md, access links).

The token carries 256 random bits, so it can be neither guessed nor derived from an
account id; a tampered, expired, revoked or unknown token resolves to nothing (one answer
for all four, so a prober learns nothing).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

TOKEN = re.compile(r"t_[A-Za-z0-9_-]{43}")


class LinkRefused(LookupError):
    """The token opens nothing: unknown, tampered, expired or revoked."""


@dataclass(frozen=True, slots=True)
class Link:
    link_id: str
    account_id: str
    expires_at: datetime
    revoked_at: datetime | None = None
    label: str = ""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "t_" + secrets.token_urlsafe(32)


def create_link(conn: psycopg.Connection, account_id: str, ttl: timedelta, created_by: str = "",
                label: str = "", now: datetime | None = None) -> tuple[Link, str]:
    """A new link to ``account_id`` and its token (shown once; only its hash is kept)."""
    if conn.execute("SELECT 1 FROM accounts WHERE account_id = %s",
                    (account_id,)).fetchone() is None:
        raise LookupError(f"account_id: no account {account_id!r}")
    if ttl <= timedelta(0):
        raise ValueError("ttl: must be positive")
    at = (now or datetime.now(UTC)).astimezone(UTC)
    token = new_token()
    link = Link("L" + secrets.token_hex(8), account_id, at + ttl, None, label)
    conn.execute(
        "INSERT INTO tenant_links (link_id, token_hash, account_id, label, created_by, "
        "created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (link.link_id, token_hash(token), account_id, label[:200], created_by[:64], at,
         link.expires_at))
    return link, token


def resolve(conn: psycopg.Connection, token: str, now: datetime | None = None) -> Link:
    """The live link of a token; LinkRefused otherwise."""
    if not TOKEN.fullmatch(token or ""):
        raise LinkRefused("token: not a link token")
    row = conn.execute(
        "SELECT link_id, account_id, expires_at, revoked_at, label FROM tenant_links "
        "WHERE token_hash = %s", (token_hash(token),)).fetchone()
    at = now or datetime.now(UTC)
    if row is None or row[3] is not None or row[2] <= at:
        raise LinkRefused("token: unknown, expired or revoked")
    return Link(*row)


def revoke(conn: psycopg.Connection, link_id: str, by: str = "",
           now: datetime | None = None) -> bool:
    """Revoke a link at once; False when there is no such live link."""
    row = conn.execute(
        "UPDATE tenant_links SET revoked_at = %s, revoked_by = %s WHERE link_id = %s "
        "AND revoked_at IS NULL RETURNING link_id",
        (now or datetime.now(UTC), by[:64], link_id)).fetchone()
    return row is not None


def links_of(conn: psycopg.Connection, account_id: str) -> list[Link]:
    rows = conn.execute(
        "SELECT link_id, account_id, expires_at, revoked_at, label FROM tenant_links "
        "WHERE account_id = %s ORDER BY created_at", (account_id,)).fetchall()
    return [Link(*row) for row in rows]


def bind_openid(conn: psycopg.Connection, link: Link, appid: str, openid: str) -> None:
    """Bind a WeChat identity (OAuth sign-in through the link) to the link's account and,
    when the account has a customer, to that customer."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO tenant_openids (appid, openid, account_id, link_id) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (appid, openid, link.account_id, link.link_id))
        conn.execute(
            "UPDATE customers SET wechat_openid = %s WHERE customer_id = "
            "(SELECT customer_id FROM accounts WHERE account_id = %s)",
            (openid[:64], link.account_id))
