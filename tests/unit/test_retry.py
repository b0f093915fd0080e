"""runtime/retry.py: the doubling wait and the wait for a dependency still starting."""

from __future__ import annotations

import pytest

from runtime import retry
from runtime.retry import Doubling, keep_trying


def test_doubling_waits_twice_as_long_up_to_the_cap_and_starts_again() -> None:
    wait = Doubling(first_s=0.5, cap_s=3.0)
    assert [wait.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    wait.succeeded()
    assert wait.failed() == 0.5


class Unreachable(Exception):
    pass


def test_keep_trying_returns_once_the_dependency_answers(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    slept: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    answers = iter([Unreachable("starting"), Unreachable("still starting"), "ready"])

    def action() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    heard: list[str] = []
    assert keep_trying(action, Unreachable, 60.0, lambda exc: heard.append(str(exc))) == "ready"
    assert heard == ["starting", "still starting"]
    assert len(slept) == 2 and all(0 < s <= 5.0 for s in slept)


def test_keep_trying_raises_the_last_error_when_time_is_up() -> None:
    calls: list[int] = []

    def action() -> None:
        calls.append(1)
        raise Unreachable(f"attempt {len(calls)}")

    with pytest.raises(Unreachable, match="attempt 1"):
        keep_trying(action, Unreachable, 0.0, lambda exc: None)
    assert len(calls) == 1


def test_keep_trying_lets_other_errors_through_at_once() -> None:
    def action() -> None:
        raise ValueError("bad migration")

    with pytest.raises(ValueError, match="bad migration"):
        keep_trying(action, Unreachable, 60.0, lambda exc: None)
