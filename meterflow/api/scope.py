"""An operator's scope: the sites and buildings they may see and act on (pure).

A user with no scope rows (``api_user_scopes``, sql/0009_security.sql) is unrestricted, as
every admin is. A restricted user reaches what is placed in one of their sites or
buildings: a building, floor or room by where it is; an account by its room; a meter by its
room, else its account's room; a customer by any of their accounts; a gateway by its
building; payments, commands, batches and reports by the accounts and meters they touch.
Anything placed nowhere (no room) is outside every restricted scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Place:
    """Where something is: a site and a building ('' when none)."""

    site_id: str
    building_id: str


@dataclass(frozen=True, slots=True)
class Scope:
    """``restricted`` False: everything. Else the sites and buildings allowed."""

    restricted: bool = False
    sites: frozenset[str] = frozenset()
    buildings: frozenset[str] = frozenset()

    @classmethod
    def of(cls, sites: list[str] | None, buildings: list[str] | None) -> Scope:
        sites, buildings = sites or [], buildings or []
        if not sites and not buildings:
            return cls()
        return cls(True, frozenset(sites), frozenset(buildings))

    def allows(self, place: Place) -> bool:
        if not self.restricted:
            return True
        return (place.site_id != "" and place.site_id in self.sites) or \
            (place.building_id != "" and place.building_id in self.buildings)

    def allows_any(self, places: list[Place]) -> bool:
        return not self.restricted or any(self.allows(p) for p in places)

    def params(self) -> dict[str, Any]:
        """The named parameters of :meth:`sql`."""
        return {"scope_on": self.restricted, "scope_sites": sorted(self.sites),
                "scope_buildings": sorted(self.buildings)}

    @staticmethod
    def sql(site_column: str, building_column: str) -> str:
        """A condition on two columns that holds for rows inside the scope (named
        parameters, :meth:`params`)."""
        return (f"(NOT %(scope_on)s OR {site_column} = ANY(%(scope_sites)s::text[]) "
                f"OR {building_column} = ANY(%(scope_buildings)s::text[]))")

    def describe(self) -> str:
        if not self.restricted:
            return "everything"
        parts = []
        if self.sites:
            parts.append("sites " + ", ".join(sorted(self.sites)))
        if self.buildings:
            parts.append("buildings " + ", ".join(sorted(self.buildings)))
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"restricted": self.restricted, "sites": sorted(self.sites),
                "buildings": sorted(self.buildings)}


EVERYTHING = Scope()


def in_scope_sql(kind: str, column: str) -> str:
    """A condition: the ``kind`` whose id is in ``column`` is inside the scope (any of its
    places, for a customer or a site). A semi-join, so long lists stay one plan."""
    return (f"(NOT %(scope_on)s OR {column} IN (SELECT sp.id FROM scope_places sp WHERE "
            f"sp.kind = '{kind}' AND {Scope.sql('sp.site_id', 'sp.building_id')}))")
