"""Relay and valve commands of one account: sent, confirmed, or issued again.

The wallet decides whether an account's supply should be on or off (``wallet.py``); this
module follows the commands that carry a decision out, one per meter, until each meter
confirms it (docs/contracts.md, ``meterflow.commands`` and ``meterflow.commands.acks``):

* a decision issues one command per meter, made now: ``issued_at`` is the moment the
  command is created and its deadline runs from then, however late the data behind the
  decision arrived;
* an ``applied`` acknowledgement confirms the meter's command;
* a ``failed`` or ``expired`` one, while the decision still stands, schedules the command
  again after a doubling delay (``CommandPolicy``), at most ``max_attempts`` times in all;
  each retry and the final give-up are announced to operators;
* an acknowledgement of any other command (an older decision, an operator's own command)
  changes nothing here.

Pure: every function takes ``now`` and returns the new state and what happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from contracts.ids import command_id, derive_id

DISCONNECT = "disconnect"
RECONNECT = "reconnect"

#: What an account's supply looks like from the platform: decided and confirmed or not.
CONNECTED = "connected"
CUT_REQUESTED = "cut_requested"
CUT_CONFIRMED = "cut_confirmed"
RECONNECT_REQUESTED = "reconnect_requested"

SENT, APPLIED, FAILED, EXPIRED = "sent", "applied", "failed", "expired"


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """How long a command may take and how often it is issued again.

    Delays double from ``retry_base`` up to ``retry_cap``; with the defaults a command is
    tried eight times over about three and a half hours before operators must step in.
    """

    ttl: timedelta = timedelta(minutes=15)
    retry_base: timedelta = timedelta(minutes=1)
    retry_cap: timedelta = timedelta(hours=1)
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.ttl <= timedelta(0) or self.retry_base <= timedelta(0):
            raise ValueError("ttl and retry_base must be positive")
        if self.retry_cap < self.retry_base or self.max_attempts < 1:
            raise ValueError("retry_cap must be >= retry_base and max_attempts >= 1")

    def delay(self, attempt: int) -> timedelta:
        """The wait before attempt ``attempt + 1``."""
        return min(self.retry_base * 2 ** max(attempt - 1, 0), self.retry_cap)


@dataclass(frozen=True, slots=True)
class MeterCommand:
    """The newest command the account sent to one meter, and what became of it."""

    meter_id: str
    action: str
    decision_id: str
    attempt: int
    command_id: str
    issued_at: datetime
    deadline: datetime
    status: str = SENT
    retry_at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Supply:
    """Per meter, the newest command carrying out the account's supply decision."""

    commands: Mapping[str, MeterCommand] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """A meter's final acknowledgement of a command (``applied``, ``failed``, ``expired``)."""

    command_id: str
    meter_id: str
    status: str
    at: datetime
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CommandNotice:
    """For operators: a command was issued again (``command_retry``) or is given up
    (``command_abandoned``) while the decision still stands."""

    notice_id: str
    kind: str
    meter_id: str
    action: str
    attempt: int
    at: datetime
    detail: str


def attempt_id(meter_id: str, action: str, decision_id: str, attempt: int) -> str:
    """Deterministic per decision, meter and attempt."""
    origin = decision_id if attempt == 1 else f"{decision_id}#{attempt}"
    return command_id(meter_id, action, origin)


def _made(meter_id: str, action: str, decision_id: str, attempt: int, now: datetime,
          policy: CommandPolicy) -> MeterCommand:
    return MeterCommand(meter_id, action, decision_id, attempt,
                        attempt_id(meter_id, action, decision_id, attempt), now,
                        now + policy.ttl)


def issue(supply: Supply, action: str, decision_id: str, meters: Iterable[str],
          now: datetime, policy: CommandPolicy) -> tuple[Supply, list[MeterCommand]]:
    """A new decision: one command per meter, replacing whatever was pending for it."""
    if action not in (DISCONNECT, RECONNECT):
        raise ValueError(f"not a supply action: {action!r}")
    made = [_made(meter, action, decision_id, 1, now, policy) for meter in meters]
    commands = {**supply.commands, **{c.meter_id: c for c in made}}
    return Supply(commands), made


def wanted_action(supply_on: bool) -> str:
    return RECONNECT if supply_on else DISCONNECT


def record_outcome(supply: Supply, outcome: CommandOutcome, supply_on: bool, now: datetime,
                   policy: CommandPolicy) -> tuple[Supply, list[CommandNotice]]:
    """Apply a meter's acknowledgement; schedule a retry when the decision still stands."""
    current = supply.commands.get(outcome.meter_id)
    if current is None or current.command_id != outcome.command_id or current.status != SENT:
        return supply, []
    if outcome.status == APPLIED:
        done = replace(current, status=APPLIED, detail=outcome.detail)
        return Supply({**supply.commands, current.meter_id: done}), []
    status = FAILED if outcome.status == FAILED else EXPIRED
    ended = replace(current, status=status, detail=outcome.detail)
    if current.action != wanted_action(supply_on):
        return Supply({**supply.commands, current.meter_id: ended}), []
    if current.attempt >= policy.max_attempts:
        notice = CommandNotice(
            derive_id("command_abandoned", current.command_id), "command_abandoned",
            current.meter_id, current.action, current.attempt, now,
            f"{current.action} of {current.meter_id} {status} after {current.attempt} "
            f"attempt(s); not issued again: {outcome.detail}".strip())
        return Supply({**supply.commands, current.meter_id: ended}), [notice]
    retry_at = now + policy.delay(current.attempt)
    waiting = replace(ended, retry_at=retry_at)
    notice = CommandNotice(
        derive_id("command_retry", current.command_id), "command_retry", current.meter_id,
        current.action, current.attempt, now,
        f"{current.action} of {current.meter_id} {status} (attempt {current.attempt} of "
        f"{policy.max_attempts}: {outcome.detail}); issued again at {retry_at.isoformat()}")
    return Supply({**supply.commands, current.meter_id: waiting}), [notice]


def due_again(supply: Supply, supply_on: bool, now: datetime, policy: CommandPolicy
              ) -> tuple[Supply, list[MeterCommand]]:
    """Commands whose retry time has come, made again (new id, deadline from now).

    A retry of a decision that no longer stands is dropped instead.
    """
    wanted = wanted_action(supply_on)
    commands = dict(supply.commands)
    made: list[MeterCommand] = []
    for meter, current in supply.commands.items():
        if current.retry_at is None or current.retry_at > now:
            continue
        if current.action != wanted:
            commands[meter] = replace(current, retry_at=None)
            continue
        again = _made(meter, current.action, current.decision_id, current.attempt + 1, now,
                      policy)
        commands[meter] = again
        made.append(again)
    return Supply(commands), made


def wake_at(supply: Supply) -> datetime | None:
    """The earliest moment a retry is due, for the clock that wakes the account."""
    return min((c.retry_at for c in supply.commands.values() if c.retry_at is not None),
               default=None)


def supply_state(supply: Supply, supply_on: bool) -> str:
    """``connected``, ``cut_requested``, ``cut_confirmed`` or ``reconnect_requested``.

    Cut is confirmed when every meter applied the newest disconnect; a reconnect is
    requested until every meter applied it.
    """
    commands = list(supply.commands.values())
    if not supply_on:
        cut = [c for c in commands if c.action == DISCONNECT]
        if cut and len(cut) == len(commands) and all(c.status == APPLIED for c in cut):
            return CUT_CONFIRMED
        return CUT_REQUESTED
    if any(c.action == RECONNECT and c.status != APPLIED for c in commands):
        return RECONNECT_REQUESTED
    return CONNECTED


def forget_meters(supply: Supply, meters: Iterable[str]) -> Supply:
    """Only the account's current meters are followed (a removed meter is dropped)."""
    keep = set(meters)
    if set(supply.commands) <= keep:
        return supply
    return Supply({m: c for m, c in supply.commands.items() if m in keep})
