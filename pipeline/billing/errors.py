"""Errors of the billing domain, each naming what is wrong so a user can fix it."""

from __future__ import annotations


class TariffError(ValueError):
    """A tariff refused; ``path`` names the field (``tiers.steps[1].upto``)."""

    def __init__(self, path: str, reason: str, source: str = "") -> None:
        self.path = path
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{path}: {reason}" if path else f"{where}{reason}")

    def in_source(self, source: str) -> TariffError:
        """The same error, attributed to a file."""
        return TariffError(self.path, self.reason, source)


class RatingError(ValueError):
    """An interval that cannot be rated (no tariff version in force, unknown band...)."""
