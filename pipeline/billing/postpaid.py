"""Postpaid bills: lines, totals, states and the settlement of payments (pure).

Rules (docs/tariffs.md, "Postpaid bills"):

* a postpaid account's wallet is its running account: energy, water, custom charges and
  apportionment shares are ledger entries there (never a cut-off), payments are credits;
* a bill covers local days ``[start, end)``: its charge lines add up to the debits of the
  ledger in the period (energy and water split over band and step by the largest-remainder
  method, ``apportion.allot``, so the lines add up to what the ledger charged); adjustments
  made when confirming are lines of their own, posted to the ledger as adjustments;
* ``opening`` and ``closing`` are the ledger balance before and after the period;
  previous arrears are what the opening balance owed, the amount due what the closing
  balance owes;
* payments settle the oldest bills first (``settle``): a bill is ``paid``, ``partly_paid``,
  ``overdue`` (past its due day, not fully paid) or still ``issued``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from pipeline.billing.apportion import allot

STATES = ("draft", "confirmed", "issued", "partly_paid", "paid", "overdue", "void")
#: Settled states follow from payments; an operator moves a bill along the others.
OPEN_STATES = ("issued", "partly_paid", "overdue")
MOVES: dict[str, tuple[str, ...]] = {
    "confirm": ("draft",),
    "issue": ("confirmed",),
    "void": ("draft", "confirmed", "issued", "partly_paid", "overdue"),
}
TARGET = {"confirm": "confirmed", "issue": "issued", "void": "void"}
LINE_KINDS = ("electricity", "water", "charge_item", "apportionment", "adjustment")


class BillError(ValueError):
    """A move a bill's state does not allow, or lines that do not add up."""


@dataclass(frozen=True, slots=True)
class UsageLine:
    """Exact rated money of one commodity, band and step in the period (rated_lines)."""

    commodity: str
    band: str | None
    step: int | None
    units: Decimal
    exact_yuan: Decimal


@dataclass(frozen=True, slots=True)
class BillLine:
    """One line of a bill; ``amount_fen`` is what the tenant owes for it (credits < 0)."""

    kind: str
    label: str
    amount_fen: int
    units: Decimal | None = None
    band: str | None = None
    step: int | None = None
    ref: str = ""


@dataclass(frozen=True, slots=True)
class Totals:
    opening_fen: int
    charges_fen: int
    payments_fen: int
    closing_fen: int

    @property
    def previous_arrears_fen(self) -> int:
        return max(-self.opening_fen, 0)

    @property
    def amount_due_fen(self) -> int:
        return max(-self.closing_fen, 0)


def usage_lines(commodity: str, charged_fen: int, usage: Sequence[UsageLine]) -> list[BillLine]:
    """A commodity's ledger charges in the period, split over its bands and steps."""
    mine = [u for u in usage if u.commodity == commodity]
    if not mine:
        if charged_fen:
            return [BillLine(commodity, commodity, charged_fen)]
        return []
    if charged_fen < 0:
        raise BillError(f"{commodity}: charged {charged_fen} fen is negative")
    keys = [f"{i}" for i in range(len(mine))]
    shares = allot(charged_fen, [(k, max(u.exact_yuan, Decimal(0))) for k, u in
                                 zip(keys, mine, strict=True)])
    lines = []
    for line, share in zip(mine, shares, strict=True):
        label = commodity + "".join(f" {p}" for p in (line.band, None if line.step is None
                                                      else f"step {line.step}") if p)
        lines.append(BillLine(commodity, label, share.amount_fen, line.units, line.band,
                              line.step))
    return lines


def totals(opening_fen: int, lines: Sequence[BillLine], payments_fen: int) -> Totals:
    """The bill's sums: charges are its lines; closing = opening + payments - charges."""
    charges = sum(line.amount_fen for line in lines)
    return Totals(opening_fen, charges, payments_fen, opening_fen + payments_fen - charges)


def move(state: str, action: str) -> str:
    """The state after an operator's ``action`` (confirm, issue, void)."""
    if action not in MOVES:
        raise BillError(f"action: {action!r} is not one of {', '.join(MOVES)}")
    if state not in MOVES[action]:
        raise BillError(f"state: a {state} bill cannot be {TARGET[action]} "
                        f"(allowed from {', '.join(MOVES[action])})")
    return TARGET[action]


@dataclass(frozen=True, slots=True)
class OpenBill:
    """A bill that asks for money: what it charged and when it is due."""

    bill_id: str
    start: date
    charges_fen: int
    due: date


def settle(bills: Sequence[OpenBill], paid_fen: int) -> dict[str, int]:
    """Payments (``paid_fen`` in all) settle the oldest bills first: fen paid per bill."""
    left = max(paid_fen, 0)
    paid: dict[str, int] = {}
    for bill in sorted(bills, key=lambda b: (b.start, b.bill_id)):
        take = min(max(bill.charges_fen, 0), left)
        paid[bill.bill_id] = take
        left -= take
    return paid


def status(bill: OpenBill, paid_fen: int, today: date, was: str = "issued") -> str:
    """``paid``, ``partly_paid``, ``overdue`` or ``issued`` of an issued bill; once
    overdue it stays so until paid (``was``: its state now)."""
    if paid_fen >= bill.charges_fen:
        return "paid"
    if today > bill.due or was == "overdue":
        return "overdue"
    return "partly_paid" if paid_fen > 0 else "issued"
