"""Backoff, quiet hours in the recipient's zone, rate limits, urgency, the meta-alarm rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from connectors.notify.policy import (
    Delivered,
    Failed,
    Hold,
    Outcome,
    QuietHours,
    RateLimit,
    Retry,
    RetryPolicy,
    Send,
    after_attempt,
    backoff_delay,
    gate,
    raises_meta_alarm,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
ZONES = st.sampled_from([ZoneInfo(z) for z in (
    "Asia/Shanghai", "Europe/London", "America/New_York", "Australia/Lord_Howe", "UTC")])
INSTANTS = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),  # noqa: DTZ001
                        timezones=st.just(UTC))
WINDOWS = st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 23),
                    st.integers(0, 59)).filter(lambda t: t[:2] != t[2:]).map(
    lambda t: QuietHours.parse(f"{t[0]:02d}:{t[1]:02d}-{t[2]:02d}:{t[3]:02d}"))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


# -- backoff and attempts -------------------------------------------------------------------

@given(st.integers(1, 200), st.text(max_size=20))
def test_backoff_stays_within_jitter_of_the_capped_exponential(attempt: int, salt: str) -> None:
    policy = RetryPolicy(base_s=2, factor=2, cap_s=300, jitter=0.2, max_attempts=10)
    delay = backoff_delay(policy, attempt, salt).total_seconds()
    raw = min(300.0, 2.0 * 2 ** min(attempt - 1, 64))
    assert raw * 0.8 - 1e-6 <= delay <= min(300.0, raw * 1.2) + 1e-6


def test_backoff_without_jitter_doubles_then_caps() -> None:
    policy = RetryPolicy(base_s=1, factor=2, cap_s=10, jitter=0)
    assert [backoff_delay(policy, n).total_seconds() for n in range(1, 7)] == \
        [1, 2, 4, 8, 10, 10]


def test_backoff_is_deterministic_per_salt() -> None:
    policy = RetryPolicy()
    assert backoff_delay(policy, 3, "n-1") == backoff_delay(policy, 3, "n-1")
    assert backoff_delay(policy, 3, "n-1") != backoff_delay(policy, 3, "n-2")


def test_after_attempt() -> None:
    policy = RetryPolicy(base_s=10, factor=2, cap_s=100, jitter=0, max_attempts=3)
    now = local(2026, 7, 1, 10)
    assert after_attempt(policy, 1, Outcome.DELIVERED, "ok", now) == Delivered()
    assert after_attempt(policy, 1, Outcome.RETRY, "HTTP 500", now) == \
        Retry(now + timedelta(seconds=10), "HTTP 500")
    assert after_attempt(policy, 2, Outcome.RETRY, "HTTP 500", now) == \
        Retry(now + timedelta(seconds=20), "HTTP 500")
    final = after_attempt(policy, 3, Outcome.RETRY, "HTTP 500", now)
    assert isinstance(final, Failed) and "gave up after 3" in final.detail
    assert after_attempt(policy, 1, Outcome.FAILED, "invalid number", now) == \
        Failed("invalid number")


def test_bad_retry_policies_are_refused() -> None:
    for kwargs in ({"base_s": 0}, {"factor": 0.5}, {"cap_s": 1, "base_s": 2}, {"jitter": 1},
                   {"max_attempts": 0}):
        with pytest.raises(ValueError):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_meta_alarms_do_not_loop() -> None:
    assert raises_meta_alarm("low_balance") and raises_meta_alarm("disconnect")
    assert not raises_meta_alarm("notification_failed")


# -- quiet hours ----------------------------------------------------------------------------

def test_quiet_hours_across_midnight() -> None:
    quiet = QuietHours.parse("22:00-07:00")
    assert quiet.release(local(2026, 7, 1, 23, 30), SHANGHAI) == local(2026, 7, 2, 7, 0)
    assert quiet.release(local(2026, 7, 2, 2, 30), SHANGHAI) == local(2026, 7, 2, 7, 0)
    assert quiet.release(local(2026, 7, 2, 6, 59), SHANGHAI) == local(2026, 7, 2, 7, 0)
    assert quiet.release(local(2026, 7, 2, 7, 0), SHANGHAI) is None
    assert quiet.release(local(2026, 7, 1, 21, 59), SHANGHAI) is None
    assert quiet.release(local(2026, 7, 1, 22, 0), SHANGHAI) == local(2026, 7, 2, 7, 0)


def test_quiet_hours_within_a_day_and_in_the_recipients_zone() -> None:
    quiet = QuietHours.parse("12:00-14:00")
    london = ZoneInfo("Europe/London")
    # 12:30 in London is 19:30 in Shanghai: quiet for a London recipient only
    at = datetime(2026, 7, 1, 12, 30, tzinfo=london)
    assert quiet.release(at, london) == datetime(2026, 7, 1, 14, 0, tzinfo=london)
    assert quiet.release(at, SHANGHAI) is None


def test_quiet_hours_parse() -> None:
    assert str(QuietHours.parse(" 22:00-07:30 ")) == "22:00-07:30"
    for bad in ("22-07", "24:00-07:00", "22:00-22:00", "22:60-07:00", ""):
        with pytest.raises(ValueError, match="quiet hours"):
            QuietHours.parse(bad)


@given(WINDOWS, INSTANTS, ZONES)
def test_release_is_the_first_moment_outside_the_window(quiet: QuietHours, now: datetime,
                                                        zone: ZoneInfo) -> None:
    until = quiet.release(now, zone)
    if until is None:
        return
    assert until >= now
    assert until - now <= timedelta(hours=25)
    assert quiet.release(until, zone) is None  # the hold ends outside the window
    # every minute before the release is still inside it
    probe = until - timedelta(minutes=1)
    if probe >= now:
        assert quiet.release(probe, zone) is not None


# -- rate limits and the gate ----------------------------------------------------------------

@given(st.integers(1, 5), st.integers(60, 7200),
       st.lists(st.integers(0, 7200), max_size=12))
def test_rate_limit_frees_exactly_one_slot(count: int, per_s: int, ages: list[int]) -> None:
    now = datetime(2026, 7, 1, tzinfo=UTC)
    limit = RateLimit(count, per_s)
    sent = [now - timedelta(seconds=a) for a in ages]
    free = limit.free_at(sent, now)
    in_window = [t for t in sent if now - timedelta(seconds=per_s) < t <= now]
    if free is None:
        assert len(in_window) < count
        return
    assert len(in_window) >= count and free > now
    assert limit.free_at(sent, free) is None  # one more fits at the time given
    just_before = free - timedelta(microseconds=1)
    assume(just_before > now)
    assert limit.free_at(sent, just_before) is not None


def test_gate_holds_non_urgent_in_quiet_hours_and_lets_urgent_through() -> None:
    night = local(2026, 7, 2, 3, 0)
    quiet = QuietHours.parse("22:00-07:00")
    held = gate(night, urgent=False, quiet=quiet, zone=SHANGHAI, limit=None, sent=[])
    assert isinstance(held, Hold) and held.until == local(2026, 7, 2, 7, 0)
    assert held.reason == "quiet hours 22:00-07:00 (Asia/Shanghai) until 2026-07-02 07:00"
    assert gate(night, urgent=True, quiet=quiet, zone=SHANGHAI, limit=None, sent=[]) == Send()
    day = local(2026, 7, 2, 9, 0)
    assert gate(day, urgent=False, quiet=quiet, zone=SHANGHAI, limit=None, sent=[]) == Send()


def test_gate_rate_limit() -> None:
    now = local(2026, 7, 2, 9, 0)
    limit = RateLimit(2, 3600)
    sent = [now - timedelta(minutes=50), now - timedelta(minutes=10)]
    held = gate(now, urgent=False, quiet=None, zone=SHANGHAI, limit=limit, sent=sent)
    assert isinstance(held, Hold) and held.until == now + timedelta(minutes=10)
    assert gate(now, urgent=True, quiet=None, zone=SHANGHAI, limit=limit, sent=sent) == Send()
    assert gate(now, urgent=False, quiet=None, zone=SHANGHAI, limit=limit,
                sent=sent[1:]) == Send()
