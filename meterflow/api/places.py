"""Where things are, and the checks that keep a restricted operator inside their scope.

Every handler that reads or changes one thing calls :func:`check` (or :func:`check_place`
for where a new thing will be); lists filter with :meth:`meterflow.api.scope.Scope.sql`.
A refusal is :class:`ScopeDenied` (403); the app's handler writes it to the audit log
(``scope.denied``) in a transaction of its own, so the refused request's rollback cannot
take the audit row with it.
"""

from __future__ import annotations

from typing import Literal

import psycopg

from meterflow.api.errors import ApiError
from meterflow.api.scope import Place
from meterflow.api.tokens import Actor

Kind = Literal["site", "building", "floor", "room", "account", "meter", "customer", "gateway"]


class ScopeDenied(ApiError):
    """A request outside the caller's scope: 403, audited by the app."""

    def __init__(self, actor: Actor, target: str, reason: str) -> None:
        super().__init__(403, "scope", reason)
        self.audit = (actor, target)


def places(conn: psycopg.Connection, kind: Kind, ident: str) -> list[Place] | None:
    """The places of one thing; None when it does not exist."""
    rows = conn.execute("SELECT site_id, building_id FROM scope_places WHERE kind = %s "
                        "AND id = %s", (kind, ident)).fetchall()
    return [Place(str(s), str(b)) for s, b in rows] or None


def refuse(actor: Actor, target: str, what: str) -> ScopeDenied:
    return ScopeDenied(actor, target, f"{what} is outside your scope "
                                      f"({actor.scope.describe()})")


def check(conn: psycopg.Connection, actor: Actor, kind: Kind, ident: str | None) -> None:
    """Refuse when ``ident`` exists outside the actor's scope (a missing one passes: the
    handler answers 404 for it, or the creation is checked by :func:`check_place`)."""
    if not actor.scope.restricted or ident is None:
        return
    found = places(conn, kind, ident)
    if found is not None and not actor.scope.allows_any(found):
        raise refuse(actor, f"{kind}:{ident}", f"{kind} {ident}")


def check_claim(conn: psycopg.Connection, actor: Actor, kind: Kind, ident: str | None) -> None:
    """Taking something into the actor's scope (a meter into an account, a customer onto
    an account): refused when it is placed elsewhere; a missing one, or one placed nowhere
    (registered from a fleet file, a new customer), may be claimed."""
    if not actor.scope.restricted or ident is None:
        return
    found = places(conn, kind, ident)
    if found is None or all(not p.site_id and not p.building_id for p in found):
        return
    if not actor.scope.allows_any(found):
        raise refuse(actor, f"{kind}:{ident}", f"{kind} {ident}")


def check_existing(conn: psycopg.Connection, actor: Actor, kind: Kind, ident: str) -> None:
    """Like :func:`check`, but a thing that does not exist is outside a restricted scope
    too (batch targets: an item must not run on something made later elsewhere)."""
    if not actor.scope.restricted:
        return
    found = places(conn, kind, ident)
    if found is None or not actor.scope.allows_any(found):
        raise refuse(actor, f"{kind}:{ident}", f"{kind} {ident}")


def check_place(actor: Actor, target: str, place: Place | None, what: str) -> None:
    """Refuse putting something where the actor's scope does not reach (None: nowhere)."""
    if actor.scope.restricted and (place is None or not actor.scope.allows(place)):
        raise refuse(actor, target, what)


def place_of(conn: psycopg.Connection, kind: Kind, ident: str | None) -> Place | None:
    """The one place of a site, building, floor, room or account (None: missing or
    nowhere)."""
    if ident is None:
        return None
    found = places(conn, kind, ident)
    if not found:
        return None
    if kind == "site":
        return Place(ident, "")
    place = found[0]
    return place if place.site_id or place.building_id else None


def check_site_write(actor: Actor, site_id: str) -> None:
    """Changing a site needs the site itself in scope (a building is not enough)."""
    if actor.scope.restricted and site_id not in actor.scope.sites:
        raise refuse(actor, f"site:{site_id}", f"site {site_id}")

