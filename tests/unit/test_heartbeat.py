"""A service's progress as its health probe reports it (an injected clock)."""

from __future__ import annotations

from runtime.health import Heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_new_service_has_max_age_to_make_progress() -> None:
    clock = Clock()
    beat = Heartbeat(30, clock)
    clock.now += 29
    assert "status" not in beat.report()
    clock.now += 2
    assert beat.report()["status"] == "stale"


def test_progress_resets_the_age_and_clears_the_error() -> None:
    clock = Clock()
    beat = Heartbeat(10, clock)
    beat.fail(ConnectionError("broker down"))
    clock.now += 20
    report = beat.report()
    assert (report["status"], report["last_error"], report["rounds"]) == (
        "stale", "broker down", 0)
    beat.beat()
    clock.now += 1
    assert beat.report() == {"last_progress_age_s": 1.0, "rounds": 1}


def test_an_error_without_a_message_is_named_by_its_type() -> None:
    beat = Heartbeat(10, Clock())
    beat.fail(TimeoutError())
    assert beat.report()["last_error"] == "TimeoutError"
