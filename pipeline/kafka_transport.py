"""The workers' Kafka transport: Faust's aiokafka driver with one correction.

A partition that has no committed offset yet starts at its earliest offset
(``auto_offset_reset=earliest``). aiokafka may fetch a first batch of it while Faust still
recovers tables; Faust drops that buffered batch and then seeks every partition to its
committed offset, which leaves a partition *without* one where the dropped batch ended. Its
records before that point would never be processed: after a worker is killed before its
first offset commit, the restarted worker skipped every reading its predecessor had not
committed. The correction seeks such partitions back to their beginning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, TransportT


class ConsumerThread(driver.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        changelogs = self.app.tables.changelog_topics  # Faust's recovery positions these
        fresh = [tp for tp, offset in committed.items()
                 if (offset is None or offset <= 0) and tp.topic not in changelogs]
        if fresh:
            self.log.info("No committed offset for %s: reading from the beginning",
                          ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(fresh)))
            await self.call_thread(self._ensure_consumer().seek_to_beginning, *fresh)
        return committed


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = Consumer


class App(faust.App):
    """A Faust app on :class:`Transport`."""

    def _new_transport(self) -> TransportT:
        return cast(TransportT, Transport(cast(Any, self.conf.broker_consumer), self))
