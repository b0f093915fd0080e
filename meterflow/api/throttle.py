"""Throttling of failed authentication, per client address and per user name.

Each failure counts against its keys (``auth_throttle``, sql/0009_security.sql): the
client's address, and the user name when the attempt named one. ``max_failures`` within
``window_s`` block the key for ``block_s`` (OWASP Authentication Cheat Sheet, "Protect
against automated attacks"). The counts live in PostgreSQL, so every API process sees
them.

Bearer tokens are checked against the address only: their secret cannot be guessed, and
a block by user name would let anyone who knows a token id lock its owner out. A sign-in
with a password (a web console) checks both keys with the same functions. A block shows
in the audit log once, when it starts (``auth.throttled``); attempts while blocked are
answered 429 with ``Retry-After`` and not counted again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg

KeyKind = Literal["address", "user"]


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    max_failures: int = 10
    window_s: int = 300
    block_s: int = 900


@dataclass(frozen=True, slots=True)
class Key:
    kind: KeyKind
    value: str


@dataclass(frozen=True, slots=True)
class Block:
    key: Key
    until: datetime
    retry_after_s: int


def keys(address: str | None, user: str | None = None) -> list[Key]:
    found = []
    if address:
        found.append(Key("address", address[:200]))
    if user:
        found.append(Key("user", user[:200]))
    return found


def blocked(conn: psycopg.Connection, wanted: list[Key]) -> Block | None:
    """The block in force on any of the keys (the longest), else None."""
    if not wanted:
        return None
    row = conn.execute(
        "SELECT kind, key, blocked_until, extract(epoch FROM blocked_until - now())::float "
        "FROM auth_throttle WHERE (kind, key) IN (SELECT * FROM unnest(%s::text[], %s::text[])) "
        "AND blocked_until > now() ORDER BY blocked_until DESC LIMIT 1",
        ([k.kind for k in wanted], [k.value for k in wanted])).fetchone()
    if row is None:
        return None
    return Block(Key(row[0], row[1]), row[2], max(1, math.ceil(float(row[3]))))


def failed(conn: psycopg.Connection, policy: ThrottlePolicy, wanted: list[Key]) -> list[Block]:
    """Count a failure against every key; return the blocks that start with it."""
    started = []
    for key in wanted:
        row = conn.execute(
            """
            INSERT INTO auth_throttle AS t (kind, key, failures, window_start, last_failure_at,
                                            blocked_until)
            VALUES (%(kind)s, %(key)s, 1, now(), now(),
                    CASE WHEN %(max)s <= 1 THEN now() + make_interval(secs => %(block)s) END)
            ON CONFLICT (kind, key) DO UPDATE SET
                failures = CASE WHEN t.window_start <= now() - make_interval(secs => %(window)s)
                                THEN 1 ELSE t.failures + 1 END,
                window_start = CASE WHEN t.window_start <= now() -
                                         make_interval(secs => %(window)s)
                                    THEN now() ELSE t.window_start END,
                last_failure_at = now(),
                blocked_until = CASE
                    WHEN (CASE WHEN t.window_start <= now() - make_interval(secs => %(window)s)
                               THEN 1 ELSE t.failures + 1 END) = %(max)s
                    THEN now() + make_interval(secs => %(block)s) ELSE t.blocked_until END
            RETURNING failures, blocked_until,
                      extract(epoch FROM blocked_until - now())::float
            """, {"kind": key.kind, "key": key.value, "max": policy.max_failures,
                  "window": policy.window_s, "block": policy.block_s}).fetchone()
        assert row is not None
        if int(row[0]) == policy.max_failures and row[1] is not None:
            started.append(Block(key, row[1], max(1, math.ceil(float(row[2])))))
    conn.execute("DELETE FROM auth_throttle WHERE last_failure_at < now() - interval '1 day' "
                 "AND (blocked_until IS NULL OR blocked_until < now())")
    return started


def succeeded(conn: psycopg.Connection, key: Key) -> None:
    """A successful sign-in clears its user name's count (not its address's)."""
    conn.execute("DELETE FROM auth_throttle WHERE kind = %s AND key = %s AND "
                 "(blocked_until IS NULL OR blocked_until < now())", (key.kind, key.value))
