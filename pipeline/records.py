"""The state each stage keeps per key, as typed records, and their compact codecs.

One record per meter (validation and tier usage: one state, one changelog) and one per
account (wallet and the commands carrying out its supply decision). Records are encoded
as JSON by msgspec straight from the billing domain's dataclasses: decimals as text,
instants with their offset, exact rationals as ``"p/q"``; nothing grows with the number of
readings (the wallet keeps one newest charge per meter and the keys of money commands).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec

from contracts.money import parse_fraction
from pipeline.billing.supply import Supply
from pipeline.billing.tier_state import TierState
from pipeline.billing.validation import MeterState
from pipeline.billing.wallet_model import (
    CONNECTED,
    LastCharge,
    Processed,
    WalletConfig,
    WalletState,
)


class MeterRecord(msgspec.Struct, array_like=True, frozen=True):
    """Per meter: the validation state, tier usage under its tariff, offline announced,
    and the verdicts of its most recent readings (pipeline/billing/recent.py)."""

    validation: MeterState
    tiers: TierState | None = None
    offline: bool = False
    recent: bytes = b""


class WalletSnapshot(msgspec.Struct, array_like=True, frozen=True):
    """A wallet's state without its configuration (that is read from the database)."""

    balance_fen: int = 0
    seq: int = 0
    cumulative_cost: Decimal = Decimal(0)
    charged_fen: int = 0
    fired_levels: frozenset[int] = frozenset()
    supply: str = CONNECTED
    disconnect_pending: bool = False
    deferred_until: datetime | None = None
    manual_keep_supply: bool = False
    processed: dict[str, Processed] = msgspec.field(default_factory=dict)
    last_charges: dict[str, LastCharge] = msgspec.field(default_factory=dict)
    shielded_fen: int = 0  # last: records written before it existed decode with 0

    def state(self, account_id: str, config: WalletConfig) -> WalletState:
        return WalletState(account_id, config, self.balance_fen, self.seq,
                           self.cumulative_cost, self.charged_fen, self.fired_levels,
                           self.supply, self.disconnect_pending, self.deferred_until,
                           self.manual_keep_supply, self.processed, self.last_charges,
                           self.shielded_fen)

    @classmethod
    def of(cls, state: WalletState) -> WalletSnapshot:
        return cls(state.balance_fen, state.seq, state.cumulative_cost, state.charged_fen,
                   state.fired_levels, state.supply, state.disconnect_pending,
                   state.deferred_until, state.manual_keep_supply, dict(state.processed),
                   dict(state.last_charges), state.shielded_fen)


class WalletRecord(msgspec.Struct, array_like=True, frozen=True):
    """Per account: the wallet and the newest command sent to each of its meters."""

    wallet: WalletSnapshot
    supply: Supply = msgspec.field(default_factory=Supply)


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Fraction and isinstance(value, str):
        return parse_fraction(value)
    raise NotImplementedError(f"cannot decode {kind!r}")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="string")
_METER = msgspec.json.Decoder(MeterRecord, dec_hook=_dec_hook)
_WALLET = msgspec.json.Decoder(WalletRecord, dec_hook=_dec_hook)


def encode(record: MeterRecord | WalletRecord) -> bytes:
    return _ENCODER.encode(record)


def meter_record(data: bytes | None) -> MeterRecord | None:
    return None if data is None else _METER.decode(data)


def wallet_record(data: bytes | None) -> WalletRecord | None:
    return None if data is None else _WALLET.decode(data)
