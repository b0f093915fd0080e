"""Supply commands: made now, confirmed by acks, issued again with backoff, bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.billing.supply import (
    APPLIED,
    CONNECTED,
    CUT_CONFIRMED,
    CUT_REQUESTED,
    EXPIRED,
    RECONNECT_REQUESTED,
    CommandOutcome,
    CommandPolicy,
    Supply,
    due_again,
    forget_meters,
    issue,
    record_outcome,
    supply_state,
    wake_at,
)

NOW = datetime(2026, 7, 3, 9, 0, tzinfo=UTC)
POLICY = CommandPolicy(ttl=timedelta(minutes=15), retry_base=timedelta(minutes=1),
                       retry_cap=timedelta(minutes=10), max_attempts=4)


def outcome(command_id: str, meter: str, status: str, at: datetime = NOW) -> CommandOutcome:
    return CommandOutcome(command_id, meter, status, at, "detail")


def test_a_decision_makes_one_command_per_meter_dated_now() -> None:
    supply, made = issue(Supply(), "disconnect", "supply-1", ("M1", "M2"), NOW, POLICY)
    assert [(c.meter_id, c.action, c.attempt) for c in made] == [
        ("M1", "disconnect", 1), ("M2", "disconnect", 1)]
    assert all(c.issued_at == NOW and c.deadline == NOW + POLICY.ttl for c in made)
    assert made[0].command_id != made[1].command_id
    _, same = issue(Supply(), "disconnect", "supply-1", ("M1", "M2"), NOW, POLICY)
    assert [c.command_id for c in same] == [c.command_id for c in made], "deterministic"
    assert supply_state(supply, supply_on=False) == CUT_REQUESTED
    with pytest.raises(ValueError, match="not a supply action"):
        issue(Supply(), "open", "x", ("M1",), NOW, POLICY)


def test_the_cut_is_confirmed_when_every_meter_applied_it() -> None:
    supply, made = issue(Supply(), "disconnect", "s", ("M1", "M2"), NOW, POLICY)
    supply, notices = record_outcome(supply, outcome(made[0].command_id, "M1", APPLIED),
                                     False, NOW, POLICY)
    assert notices == [] and supply_state(supply, False) == CUT_REQUESTED
    supply, _ = record_outcome(supply, outcome(made[1].command_id, "M2", APPLIED), False, NOW,
                               POLICY)
    assert supply_state(supply, False) == CUT_CONFIRMED and wake_at(supply) is None


def test_an_expired_command_is_issued_again_after_a_doubling_wait_then_given_up() -> None:
    supply, [command] = issue(Supply(), "disconnect", "s", ("M1",), NOW, POLICY)
    waits = []
    now = NOW
    for attempt in range(1, POLICY.max_attempts):
        now += timedelta(minutes=15)
        supply, [notice] = record_outcome(supply, outcome(command.command_id, "M1", EXPIRED),
                                          False, now, POLICY)
        assert notice.kind == "command_retry" and notice.attempt == attempt
        retry = wake_at(supply)
        assert retry is not None
        waits.append(retry - now)
        assert due_again(supply, False, retry - timedelta(seconds=1), POLICY)[1] == []
        supply, [command] = due_again(supply, False, retry, POLICY)
        assert command.attempt == attempt + 1 and command.issued_at == retry
        assert command.deadline == retry + POLICY.ttl
    assert waits == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    supply, [notice] = record_outcome(supply, outcome(command.command_id, "M1", "failed"),
                                      False, now, POLICY)
    assert notice.kind == "command_abandoned" and wake_at(supply) is None
    assert supply_state(supply, False) == CUT_REQUESTED, "still not confirmed: operators act"


def test_no_retry_once_the_decision_changed_and_stale_acks_change_nothing() -> None:
    supply, [cut] = issue(Supply(), "disconnect", "s1", ("M1",), NOW, POLICY)
    supply, [back] = issue(supply, "reconnect", "s2", ("M1",), NOW, POLICY)
    assert supply_state(supply, True) == RECONNECT_REQUESTED
    same, notices = record_outcome(supply, outcome(cut.command_id, "M1", EXPIRED), True, NOW,
                                   POLICY)
    assert same == supply and notices == [], "the older command is not followed any more"
    # The reconnect expires, but the account was cut again meanwhile: no retry.
    ended, notices = record_outcome(supply, outcome(back.command_id, "M1", EXPIRED), False,
                                    NOW, POLICY)
    assert notices == [] and wake_at(ended) is None
    supply, _ = record_outcome(supply, outcome(back.command_id, "M1", APPLIED), True, NOW,
                               POLICY)
    assert supply_state(supply, True) == CONNECTED
    # A retry scheduled for a decision that was then reversed is dropped when due.
    supply, [cut] = issue(Supply(), "disconnect", "s3", ("M1",), NOW, POLICY)
    supply, _ = record_outcome(supply, outcome(cut.command_id, "M1", EXPIRED), False, NOW,
                               POLICY)
    later = NOW + timedelta(hours=1)
    dropped, made = due_again(supply, True, later, POLICY)
    assert made == [] and wake_at(dropped) is None


def test_removed_meters_are_forgotten() -> None:
    supply, _ = issue(Supply(), "disconnect", "s", ("M1", "M2"), NOW, POLICY)
    assert set(forget_meters(supply, ("M2",)).commands) == {"M2"}
    assert forget_meters(supply, ("M1", "M2", "M3")) is supply


def test_policy_limits() -> None:
    with pytest.raises(ValueError):
        CommandPolicy(ttl=timedelta(0))
    with pytest.raises(ValueError):
        CommandPolicy(retry_base=timedelta(minutes=5), retry_cap=timedelta(minutes=1))
    assert POLICY.delay(10) == POLICY.retry_cap


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["applied", "failed", "expired", "stale"]), max_size=30))
def test_attempts_are_bounded_whatever_the_acks(acks: list[str]) -> None:
    """However the meter answers, a decision is tried at most max_attempts times and the
    account is woken only while a retry is pending."""
    supply, [command] = issue(Supply(), "disconnect", "s", ("M1",), NOW, POLICY)
    now, issued = NOW, 1
    for status in acks:
        now += timedelta(minutes=20)
        cid = "other" if status == "stale" else command.command_id
        supply, _ = record_outcome(supply, outcome(cid, "M1", "expired" if status == "stale"
                                                   else status), False, now, POLICY)
        retry = wake_at(supply)
        if retry is not None:
            supply, made = due_again(supply, False, retry, POLICY)
            issued += len(made)
            command = made[0]
            now = retry
    assert issued <= POLICY.max_attempts
