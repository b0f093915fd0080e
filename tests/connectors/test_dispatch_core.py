"""Commands, the retry policy, offset watermarks: pure, with property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.dispatch.offsets import OffsetTracker
from connectors.dispatch.policy import (
    CommandState,
    Final,
    Outcome,
    Retry,
    RetryPolicy,
    backoff_delay,
)
from contracts.commands import (
    Ack,
    Command,
    derive_command_id,
    identify,
    parse_ack,
    parse_command,
)
from contracts.errors import PayloadError

T0 = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)


def cmd(ttl_s: float = 60) -> Command:
    return Command.create("M1", "disconnect", origin="ledger:42", issued_at=T0,
                          ttl=timedelta(seconds=ttl_s), reason="balance exhausted")


def test_command_id_is_deterministic_and_round_trips() -> None:
    assert cmd().command_id == cmd().command_id == derive_command_id("M1", "disconnect",
                                                                     "ledger:42")
    assert cmd().command_id != derive_command_id("M1", "reconnect", "ledger:42")
    assert parse_command(cmd().to_json()) == cmd()
    ack = Ack(command_id="c", meter_id="M1", status="expired", detail="x", at=T0, attempts=3)
    assert parse_ack(ack.to_json()) == ack


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "empty message"),
    (b"{", "not valid JSON"),
    (b'{"command_id": "c", "meter_id": "M1", "action": "trip", "issued_at": "2026-07-01T00:00Z",'
     b' "deadline": "2026-07-01T01:00Z"}', "field action"),
    (b'{"command_id": "c", "meter_id": "M1", "action": "disconnect", '
     b'"issued_at": "2026-07-01T00:00", "deadline": "2026-07-01T01:00Z"}', "field issued_at"),
    (b'{"command_id": "c", "meter_id": "M1", "action": "disconnect", '
     b'"issued_at": "2026-07-01T01:00Z", "deadline": "2026-07-01T00:00Z"}',
     "deadline must be after issued_at"),
])
def test_bad_commands_are_refused_with_the_field(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_command(raw)


def test_identify_a_refused_command() -> None:
    assert identify(b'{"command_id": "c1", "meter_id": "M1", "action": "x"}') == ("c1", "M1")
    assert identify(b'{"command_id": "c1"}') is None
    assert identify(b'{"command_id": "c 1", "meter_id": "M1"}') is None
    assert identify(b"nope") is None


@given(st.integers(1, 200), st.text(max_size=20))
def test_backoff_is_capped_positive_and_deterministic(attempt: int, salt: str) -> None:
    policy = RetryPolicy(base_s=1, factor=2, cap_s=60, jitter=0.2)
    delay = backoff_delay(policy, attempt, salt)
    assert timedelta(0) <= delay <= timedelta(seconds=60)
    assert delay == backoff_delay(policy, attempt, salt)
    raw = min(60.0, 2.0 ** (attempt - 1))
    assert abs(delay.total_seconds() - raw) <= 0.2 * raw + 1e-9


def test_backoff_grows_exponentially_without_jitter() -> None:
    policy = RetryPolicy(base_s=1, factor=2, cap_s=10, jitter=0)
    assert [backoff_delay(policy, n).total_seconds() for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_state_machine() -> None:
    policy = RetryPolicy(base_s=1, cap_s=4, jitter=0, max_refusals=2)
    state = CommandState(cmd(ttl_s=10), policy)
    assert state.expired(T0) is None
    state.started()
    decision = state.after(Outcome.UNREACHABLE, "no reply", T0)
    assert decision == Retry(T0 + timedelta(seconds=1), "no reply")
    state.started()
    assert isinstance(state.after(Outcome.REFUSED, "bad password", T0), Retry)
    state.started()
    assert state.after(Outcome.REFUSED, "bad password", T0) == Final(
        "failed", "refused 2 time(s): bad password")
    late = CommandState(cmd(ttl_s=10), policy)
    late.started()
    # a retry never goes past the deadline: the next look finds it expired
    assert late.after(Outcome.UNREACHABLE, "x", T0 + timedelta(seconds=9.5)) == Retry(
        T0 + timedelta(seconds=10), "x")
    final = late.expired(T0 + timedelta(seconds=10))
    assert final is not None and final.status == "expired" and "after 1 attempt(s)" in final.detail
    assert CommandState(cmd(), policy).after(Outcome.APPLIED, "ok", T0) == Final("applied", "ok")
    assert CommandState(cmd(), policy).after(Outcome.IMPOSSIBLE, "no relay", T0).status == "failed"
    assert CommandState(cmd(ttl_s=0.5), policy).attempt_timeout(T0) == 0.5


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50), st.booleans()), max_size=60))
def test_watermark_never_passes_an_unfinished_offset(events: list[tuple[int, int, bool]]) -> None:
    tracker = OffsetTracker()
    seen: dict[int, set[int]] = {}
    finished: dict[int, set[int]] = {}
    for part, offset, finish in events:
        if offset in seen.get(part, set()):
            continue
        tracker.seen(part, offset)
        seen.setdefault(part, set()).add(offset)
        if finish:
            tracker.done(part, offset)
            finished.setdefault(part, set()).add(offset)
    for part, mark in tracker.watermarks().items():
        pending = seen[part] - finished.get(part, set())
        assert mark == (min(pending) if pending else max(seen[part]) + 1)
