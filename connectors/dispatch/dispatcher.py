"""The command dispatcher: commands from Kafka to meters, one final ack per command.

Thin edges around :mod:`connectors.dispatch.policy`:

* a command is parsed (bad input: dead letter, and a ``failed`` ack when its id and meter
  can be read), skipped when already finished or queued (redelivery), and appended to its
  meter's FIFO queue;
* one worker task per meter with work delivers the head of its queue, one command in
  flight per meter, retrying as the policy says; commands queued behind it that reach
  their deadline are acknowledged ``expired`` without waiting for the head;
* a final ack is produced and confirmed by Kafka before the command counts as finished
  (its id joins the finished set; its offset may be committed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from connectors.dispatch.delivery import Deliverers
from connectors.dispatch.offsets import OffsetTracker
from connectors.dispatch.policy import CommandState, Final, Outcome, Retry, RetryPolicy
from connectors.publisher import KafkaOut, connector_dead_letter
from connectors.registry import MeterEntry, Registry
from contracts.clock import Clock, utc_now
from contracts.commands import Ack, identify, parse_command
from contracts.errors import PayloadError
from contracts.topics import COMMAND_ACKS, COMMANDS
from runtime.consumer import Record
from runtime.retry import Doubling

log = logging.getLogger(__name__)
STAGE = "dispatcher"



class Dispatcher:
    def __init__(self, registry: Callable[[], Registry], deliverers: Deliverers, out: KafkaOut,
                 *, policy: RetryPolicy | None = None, finished: set[str] | None = None,
                 clock: Clock = utc_now, on_commit: Callable[[dict[int, int]], None] | None = None,
                 registry_refresh_s: float = 5.0) -> None:
        self._load_registry = registry
        self.registry = registry()
        self._registry_at = time.monotonic()
        self.registry_refresh_s = registry_refresh_s
        self.deliverers = deliverers
        self.out = out
        self.policy = policy or RetryPolicy()
        self.finished: set[str] = set(finished or ())
        self.clock = clock
        self.on_commit = on_commit
        self.offsets = OffsetTracker()
        self._queues: dict[str, deque[tuple[CommandState, Record]]] = {}
        self._queued: set[str] = set()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.acks: deque[Ack] = deque(maxlen=10_000)  # recent acks, for tests and status

    # -- intake ------------------------------------------------------------------------

    async def handle(self, record: Record) -> None:
        self.offsets.seen(record.partition, record.offset)
        try:
            command = parse_command(record.value)
        except PayloadError as exc:
            await self._refuse(record, exc.reason)
            return
        if command.command_id in self.finished or command.command_id in self._queued:
            log.info("command %s already %s; redelivery skipped", command.command_id,
                     "finished" if command.command_id in self.finished else "queued")
            self._done(record)
            return
        state = CommandState(command, self.policy)
        self._queued.add(command.command_id)
        self._queues.setdefault(command.meter_id, deque()).append((state, record))
        worker = self._workers.get(command.meter_id)
        if worker is None or worker.done():
            self._workers[command.meter_id] = asyncio.create_task(
                self._work(command.meter_id), name=f"meter-{command.meter_id}")

    async def _refuse(self, record: Record, reason: str) -> None:
        self.out.dead_letter(connector_dead_letter(
            kind="kafka", where=f"{COMMANDS}:{record.partition}:{record.offset}", stage=STAGE,
            reason=reason, raw=record.value or b"", key=record.key,
            at=datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)))
        ids = identify(record.value)
        if ids is not None and ids[0] not in self.finished:
            ack = Ack(command_id=ids[0], meter_id=ids[1], status="failed",
                      detail=f"invalid command: {reason}", at=self.clock(), attempts=0)
            await self._publish(ack)
        self._done(record)

    def _done(self, record: Record) -> None:
        self.offsets.done(record.partition, record.offset)
        if self.on_commit is not None:
            self.on_commit(self.offsets.watermarks())

    # -- per meter ---------------------------------------------------------------------

    def _entry(self, meter_id: str) -> tuple[MeterEntry | None, str]:
        entry = self.registry.get(meter_id)
        stale = time.monotonic() - self._registry_at > self.registry_refresh_s
        if entry is None and stale:
            self.registry = self._load_registry()
            self._registry_at = time.monotonic()
            entry = self.registry.get(meter_id)
        if entry is None:
            problem = self.registry.problems.get(meter_id)
            return None, problem or f"meter {meter_id} is not in the registry"
        return entry, ""

    async def _work(self, meter_id: str) -> None:
        queue = self._queues[meter_id]
        while queue:
            await self._expire_waiting(queue)
            if not queue:
                break
            state, record = queue[0]
            final = await self._drive(state)
            queue.popleft()
            await self._finish(state, record, final)
        self._queues.pop(meter_id, None)

    async def _expire_waiting(self, queue: deque[tuple[CommandState, Record]]) -> None:
        now = self.clock()
        for item in [item for item in list(queue)[1:] if item[0].expired(now)]:
            queue.remove(item)
            final = item[0].expired(now)
            assert final is not None
            await self._finish(item[0], item[1], final)

    async def _drive(self, state: CommandState) -> Final:
        command = state.command
        queue = self._queues[command.meter_id]
        while True:
            if (final := state.expired(self.clock())) is not None:
                return final
            entry, problem = self._entry(command.meter_id)
            if entry is None:
                return Final("failed", problem)
            deliverer = self.deliverers.get(entry.protocol)
            if deliverer is None:
                return Final("failed", f"no deliverer for protocol {entry.protocol}")
            state.started()
            timeout = state.attempt_timeout(self.clock())
            try:
                outcome, detail = await deliverer.deliver(entry, command, timeout)
            except Exception as exc:  # a deliverer bug must not kill the worker
                log.exception("delivery of %s failed", command.command_id)
                outcome, detail = Outcome.UNREACHABLE, f"delivery error: {exc}"
            decision = state.after(outcome, detail, self.clock())
            if isinstance(decision, Final):
                return decision
            assert isinstance(decision, Retry)
            log.info("command %s to %s: %s; next attempt at %s", command.command_id,
                     command.meter_id, detail, decision.at.isoformat())
            while (wait := (decision.at - self.clock()).total_seconds()) > 0:
                await asyncio.sleep(min(wait, 0.5))
                await self._expire_waiting(queue)

    async def _finish(self, state: CommandState, record: Record, final: Final) -> None:
        command = state.command
        ack = Ack(command_id=command.command_id, meter_id=command.meter_id, status=final.status,
                  detail=final.detail, at=self.clock(), attempts=state.attempts)
        await self._publish(ack)
        self._queued.discard(command.command_id)
        self._done(record)

    async def _publish(self, ack: Ack) -> None:
        """Produce the ack and wait until Kafka has it; only then is the command finished."""
        delay = Doubling()
        while True:
            future = self.out.send(COMMAND_ACKS, ack.meter_id.encode(), ack.to_json())
            try:
                await asyncio.to_thread(future.get, 60)
                break
            except Exception as exc:
                log.error("ack %s not confirmed by Kafka (%s); producing it again",
                          ack.command_id, exc)
                await asyncio.sleep(delay.failed())
        self.finished.add(ack.command_id)
        self.acks.append(ack)
        log.info("ack %s %s %s: %s", ack.meter_id, ack.command_id, ack.status, ack.detail)

    # -- the loop ----------------------------------------------------------------------

    async def run(self, records: asyncio.Queue[Record], stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                record = await asyncio.wait_for(records.get(), 0.5)
            except TimeoutError:
                continue
            await self.handle(record)
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)

    @property
    def busy(self) -> int:
        return len(self._queued)

