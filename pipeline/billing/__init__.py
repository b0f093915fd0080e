"""Billing domain: tariffs, rating, reading validation, wallets. Pure logic, no I/O.

The stream processors call these functions; they never re-implement them. Every
transition is a function of ``(state, event, now)`` returning ``(new_state, outputs)``;
``now`` is always a parameter. Money, ids and band names come from the contracts
(docs/architecture.md, layers); the stages keep the states as records
(pipeline/records.py).
"""

from pipeline.billing.errors import RatingError, TariffError
from pipeline.billing.rating import Rating, Usage, rate
from pipeline.billing.reading import MeterConfig, Reading
from pipeline.billing.tariff import Tariff, TariffBook
from pipeline.billing.tariff_parse import load_tariff_text, parse_tariff
from pipeline.billing.tier_state import TierState
from pipeline.billing.validation import (
    MeterReplacement,
    MeterState,
    check_stopped,
    replace_meter,
    validate,
)
from pipeline.billing.wallet import apply, open_account, tick
from pipeline.billing.wallet_model import WalletConfig, WalletState, charge_for

__all__ = [
    "MeterConfig",
    "MeterReplacement",
    "MeterState",
    "Rating",
    "RatingError",
    "Reading",
    "Tariff",
    "TariffBook",
    "TariffError",
    "TierState",
    "Usage",
    "WalletConfig",
    "WalletState",
    "apply",
    "charge_for",
    "check_stopped",
    "load_tariff_text",
    "open_account",
    "parse_tariff",
    "rate",
    "replace_meter",
    "tick",
    "validate",
]
