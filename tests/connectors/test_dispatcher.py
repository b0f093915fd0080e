"""The dispatcher with scripted deliverers: FIFO per meter, offline queueing, expiry, dedupe."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.dispatch.dispatcher import Dispatcher
from connectors.dispatch.policy import Outcome, RetryPolicy
from connectors.registry import MeterEntry, Registry
from contracts.commands import Command
from contracts.topics import COMMANDS
from runtime.consumer import Record

FAST = RetryPolicy(base_s=0.02, factor=2, cap_s=0.05, jitter=0, attempt_timeout_s=0.2)


class Done:
    def get(self, _timeout: float) -> None:
        return None


class FakeOut:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.letters: list[Any] = []

    def send(self, topic: str, key: bytes, value: bytes) -> Done:
        self.sent.append((topic, key, value))
        return Done()

    def dead_letter(self, letter: Any) -> None:
        self.letters.append(letter)


class Scripted:
    """Answers from a per-meter script; when the script runs out, the last answer repeats."""

    def __init__(self, script: dict[str, list[Outcome]]) -> None:
        self.script = script
        self.calls: dict[str, list[str]] = defaultdict(list)

    async def deliver(self, entry: MeterEntry, command: Command, timeout: float) -> Any:
        self.calls[entry.meter_id].append(command.command_id)
        answers = self.script[entry.meter_id]
        outcome = answers.pop(0) if len(answers) > 1 else answers[0]
        await asyncio.sleep(0)
        return outcome, outcome.value


class Deliverers:
    def __init__(self, d: Scripted) -> None:
        self.d = d

    def get(self, protocol: str) -> Any:
        return self.d if protocol == "dlt645" else None


def entry(meter_id: str, protocol: str = "dlt645") -> MeterEntry:
    return MeterEntry(meter_id, "electricity", protocol, "tcp://127.0.0.1:1", "000000000001")  # type: ignore[arg-type]


def record(cmd: Command | bytes, offset: int) -> Record:
    value = cmd if isinstance(cmd, bytes) else cmd.to_json()
    return Record(COMMANDS, 0, offset, b"k", value, 1_750_000_000_000)


def command(meter: str, origin: str, ttl_s: float, action: str = "disconnect") -> Command:
    return Command.create(meter, action, origin=origin, issued_at=datetime.now(UTC),  # type: ignore[arg-type]
                          ttl=timedelta(seconds=ttl_s))


async def run(dispatcher: Dispatcher, records: list[Record], until: int) -> list[dict[str, Any]]:
    import json

    for r in records:
        await dispatcher.handle(r)
    for _ in range(400):
        if len(dispatcher.acks) >= until:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    return [json.loads(v) for _t, _k, v in dispatcher.out.sent]  # type: ignore[attr-defined]


def make(script: dict[str, list[Outcome]], finished: set[str] | None = None) -> tuple[
        Dispatcher, Scripted, FakeOut, list[dict[int, int]]]:
    scripted, out, commits = Scripted(script), FakeOut(), []
    registry = Registry([entry("A"), entry("B"), entry("Z", "mqtt")])
    d = Dispatcher(lambda: registry, Deliverers(scripted), out, policy=FAST,  # type: ignore[arg-type]
                   finished=finished, on_commit=commits.append)
    return d, scripted, out, commits


def test_applied_failed_unknown_and_redelivered() -> None:
    d, scripted, _out, commits = make({"A": [Outcome.APPLIED],
                                      "B": [Outcome.REFUSED]})
    a, b = command("A", "1", 5), command("B", "1", 5)
    nobody, mqtt = command("Q", "1", 5), command("Z", "1", 5)
    acks = asyncio.run(run(d, [record(a, 0), record(b, 1), record(a, 2), record(nobody, 3),
                               record(mqtt, 4)], 4))
    by_id = {x["command_id"]: x for x in acks}
    assert len(acks) == 4  # the redelivered `a` got no second ack
    assert by_id[a.command_id]["status"] == "applied" and by_id[a.command_id]["attempts"] == 1
    assert by_id[b.command_id]["status"] == "failed" and by_id[b.command_id]["attempts"] == 3
    assert "not in the registry" in by_id[nobody.command_id]["detail"]
    assert by_id[mqtt.command_id]["detail"] == "no deliverer for protocol mqtt"
    assert scripted.calls["A"] == [a.command_id]
    assert commits[-1] == {0: 5}


def test_offline_meter_keeps_fifo_and_later_commands_expire_meanwhile() -> None:
    d, scripted, _out, commits = make({"A": [Outcome.UNREACHABLE] * 5 + [Outcome.APPLIED]})
    first, second = command("A", "1", 5), command("A", "2", 0.05, "reconnect")
    third = command("A", "3", 5, "reconnect")
    acks = asyncio.run(run(d, [record(first, 0), record(second, 1), record(third, 2)], 3))
    assert [(x["command_id"], x["status"]) for x in acks] == [
        (second.command_id, "expired"), (first.command_id, "applied"),
        (third.command_id, "applied")]
    assert acks[1]["attempts"] == 6
    assert acks[0]["attempts"] == 0  # expired while queued behind the head, never sent
    assert scripted.calls["A"] == [first.command_id] * 6 + [third.command_id]
    assert commits[-1] == {0: 3}


def test_unreachable_until_deadline_is_expired() -> None:
    d, _s, _o, _c = make({"A": [Outcome.UNREACHABLE]})
    c = command("A", "1", 0.3)
    acks = asyncio.run(run(d, [record(c, 0)], 1))
    assert acks[0]["status"] == "expired" and acks[0]["attempts"] >= 2


def test_finished_ids_from_the_acks_topic_are_not_delivered_again() -> None:
    c = command("A", "1", 5)
    d, scripted, _out, commits = make({"A": [Outcome.APPLIED]}, finished={c.command_id})
    assert asyncio.run(run(d, [record(c, 7)], 0)) == []
    assert scripted.calls == {} and commits[-1] == {0: 8}


def test_bad_command_is_dead_lettered_and_failed_when_identifiable() -> None:
    d, _s, out, commits = make({"A": [Outcome.APPLIED]})
    bad = b'{"command_id": "c1", "meter_id": "A", "action": "explode"}'
    acks = asyncio.run(run(d, [record(bad, 0), record(b"\x00", 1)], 1))
    assert [(x["command_id"], x["status"]) for x in acks] == [("c1", "failed")]
    assert "field action" in acks[0]["detail"]
    assert [letter.raw for letter in out.letters] == [bad, b"\x00"]
    assert out.letters[0].id.startswith("kafka:meterflow.commands:0:0:")
    assert commits[-1] == {0: 2}
