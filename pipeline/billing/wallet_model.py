"""Wallet state, configuration, commands and outputs (values only; rules in wallet.py).

Invariant (per account): ``charged_fen == round_fen(cumulative_cost)``; the exact
cumulative cost is kept, and each charge deducts the difference, so the sub-fen
remainder is carried from one charge to the next, never lost or doubled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from contracts.ids import charge_id
from pipeline.billing.keep_supply import KeepSupplyPolicy
from pipeline.billing.rating import Rating

CONNECTED = "connected"
DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class WalletConfig:
    """Per-account rules; defaults: alarms at 50, 20 and 10 yuan, no overdraft."""

    thresholds_fen: tuple[int, int, int] = (5000, 2000, 1000)
    overdraft_fen: int = 0
    reconnect_above_fen: int = 0
    postpaid: bool = False
    keep_supply: KeepSupplyPolicy = field(default_factory=KeepSupplyPolicy)

    def __post_init__(self) -> None:
        first, second, third = self.thresholds_fen
        if not first > second > third:
            raise ValueError("thresholds_fen must be strictly descending (level 1 highest)")
        if self.overdraft_fen < 0:
            raise ValueError("overdraft_fen must not be negative")
        if self.reconnect_above_fen < -self.overdraft_fen:
            raise ValueError("reconnect_above_fen must not be below the disconnect level")

    @property
    def disconnect_at_fen(self) -> int:
        """Supply is due to be cut when the balance is at or below this."""
        return -self.overdraft_fen


@dataclass(frozen=True, slots=True)
class Processed:
    """What an idempotency key did, so a repeat returns it and a conflict is seen."""

    kind: str
    amount: str  # fen for money commands, the Decimal cost text for charges
    seq: int
    balance_fen: int


@dataclass(frozen=True, slots=True)
class LastCharge:
    """The newest charge applied for one meter."""

    end: datetime
    key: str
    result: Processed


@dataclass(frozen=True)
class WalletState:
    """One account's wallet. Read ``alarm_level`` and ``supply`` directly."""

    account_id: str
    config: WalletConfig = field(default_factory=WalletConfig)
    balance_fen: int = 0
    seq: int = 0
    cumulative_cost: Decimal = Decimal(0)
    charged_fen: int = 0
    fired_levels: frozenset[int] = frozenset()
    supply: str = CONNECTED
    disconnect_pending: bool = False
    deferred_until: datetime | None = None
    manual_keep_supply: bool = False
    processed: Mapping[str, Processed] = field(default_factory=dict)
    #: Per meter, the last charge applied: its interval end, key and result. Charges of one
    #: meter arrive in interval order, so this watermark replaces a key per charge (which
    #: would grow by ~35,000 keys a meter a year). ``processed`` keeps money commands only.
    last_charges: Mapping[str, LastCharge] = field(default_factory=dict)
    #: Deductions of items that may not cut supply, still owed: the supply decision looks
    #: at ``balance_fen + shielded_fen``; cleared once the balance is above zero.
    shielded_fen: int = 0

    @property
    def alarm_level(self) -> int:
        """0 (no alarm) to 3: the deepest threshold the balance is at or below. After any
        posting this is the deepest level announced (``fired_levels``)."""
        return max((level for level, threshold in enumerate(self.config.thresholds_fen, 1)
                    if self.balance_fen <= threshold), default=0)


# --- commands -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Charge:
    """Cost of a rated interval ending at ``end``; ``charge_id`` (ids.charge_id) is its key."""

    charge_id: str
    meter_id: str
    cost: Decimal
    end: datetime


def charge_for(meter_id: str, rating: Rating) -> Charge:
    """The charge of a rated interval, identified by meter and interval end."""
    return Charge(charge_id(meter_id, rating.end), meter_id, rating.cost, rating.end)


@dataclass(frozen=True, slots=True)
class TopUp:
    key: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Refund:
    key: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Adjustment:
    key: str
    amount_fen: int  # positive credits the account, negative debits it
    reason: str


@dataclass(frozen=True, slots=True)
class Deduction:
    """A custom charge or an apportionment share (``kind`` charge_item or apportionment),
    once per key (item or group, account, period); ``may_cut`` False: it never cuts supply."""

    key: str
    kind: str
    amount_fen: int
    may_cut: bool = True
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SetKeepSupply:
    """Operator's manual keep-supply flag."""

    on: bool


Command = Charge | TopUp | Refund | Adjustment | Deduction | SetKeepSupply


# --- outputs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Append-only ledger line; ``amount_fen`` is signed (credits positive)."""

    entry_id: str
    account_id: str
    seq: int
    kind: str
    key: str
    amount_fen: int
    balance_fen: int
    at: datetime
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LowBalanceAlarm:
    alarm_id: str
    account_id: str
    level: int
    threshold_fen: int
    balance_fen: int
    seq: int
    at: datetime


@dataclass(frozen=True, slots=True)
class SupplyDecision:
    """``disconnect``, ``reconnect``, ``disconnect_deferred`` or ``disconnect_cancelled``."""

    decision_id: str
    account_id: str
    action: str
    reason: str
    balance_fen: int
    at: datetime
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A command refused with a stable reason; the state did not change."""

    account_id: str
    key: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Replayed:
    """A repeat: nothing applied again. ``original`` is the first result when it is still
    known (money commands; a meter's newest charge), None for an older charge."""

    key: str
    original: Processed | None


Output = LedgerEntry | LowBalanceAlarm | SupplyDecision | Refusal | Replayed
