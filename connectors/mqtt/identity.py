"""Which meters a live MQTT identity may speak for, as the bridge checks it.

The broker's ACL refuses a device that publishes for a meter that is not its own
(docs/contracts.md#mqtt-users-and-rights). The bridge checks again what still reaches it:
a reading counts only for an MQTT meter in service that has a live credential of its own
or sits behind a gateway with one. Anything else (a broker whose ACL lags the database or
was configured by hand, a meter revoked or removed meanwhile) becomes a dead letter whose
reason starts with ``identity:``. The registry is read from the database every
``refresh_s`` and again, at most once a second, before a reading is refused, so a meter
registered a moment ago is not refused for a stale view.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

LOAD_SQL = """
SELECT m.meter_id, m.removed_at IS NOT NULL AND m.removed_at <= now() AS removed, m.gateway_id,
       EXISTS (SELECT 1 FROM device_credentials c WHERE c.meter_id = m.meter_id
               AND c.revoked_at IS NULL) AS own,
       EXISTS (SELECT 1 FROM device_credentials c WHERE c.gateway_id = m.gateway_id
               AND c.revoked_at IS NULL) AS via_gateway
FROM meters m WHERE m.protocol = 'mqtt'
"""


@dataclass(frozen=True, slots=True)
class MeterIdentity:
    """An MQTT meter as the registry sees it."""

    removed: bool
    gateway_id: str | None
    own_credential: bool
    gateway_credential: bool


def problem_of(meter_id: str, entry: MeterIdentity | None) -> str | None:
    """Why no live identity may speak for this meter; None when one may."""
    if entry is None:
        return f"meter {meter_id} is not a registered MQTT meter"
    if entry.removed:
        return f"meter {meter_id} was removed"
    if entry.own_credential or entry.gateway_credential:
        return None
    if entry.gateway_id is not None:
        return (f"meter {meter_id} has no live credential and its gateway "
                f"{entry.gateway_id} has none either")
    return f"meter {meter_id} has no live MQTT credential and no gateway"


def load_db(conn: Any) -> dict[str, MeterIdentity]:
    return {str(meter): MeterIdentity(bool(removed), gateway, bool(own), bool(via))
            for meter, removed, gateway, own, via in conn.execute(LOAD_SQL).fetchall()}


class Identities:
    """The registry with its refresh rules (see the module text); thread-safe."""

    def __init__(self, load: Callable[[], dict[str, MeterIdentity]], *, refresh_s: float = 10.0,
                 retry_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, MeterIdentity] | None = None
        self._loaded_at = float("-inf")
        self.last_error = ""

    def refresh(self) -> None:
        """Read the registry now (raises when the database cannot be read)."""
        entries = self._load()
        with self._lock:
            self._entries = entries
            self._loaded_at = self._clock()
            self.last_error = ""

    def _try_refresh(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the database is away: keep the last view
            self.last_error = str(exc).strip()[:300]
            self._loaded_at = self._clock()
            log.warning("cannot refresh the MQTT identity registry: %s", self.last_error)

    @property
    def loaded(self) -> bool:
        return self._entries is not None

    def problem(self, meter_id: str) -> str | None:
        """None when a live identity may speak for ``meter_id``; else the reason."""
        age = self._clock() - self._loaded_at
        if self._entries is None or age >= self.refresh_s:
            self._try_refresh()
        found = problem_of(meter_id, (self._entries or {}).get(meter_id))
        if found is not None and self._clock() - self._loaded_at >= self.retry_s:
            self._try_refresh()
            found = problem_of(meter_id, (self._entries or {}).get(meter_id))
        if found is not None and self.last_error:
            found += f" (registry not refreshed: {self.last_error})"
        return found
