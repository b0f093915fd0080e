"""The stream engine's ceilings on this machine, on one broker; prints events per second.

Each case reads the same topic of ``--messages`` small JSON messages (2,000 keys, 4
partitions) in one process, timed from its first record to its last:

* kafka-python consume (default settings) and confluent-kafka consume: the raw ceilings;
* Quix Streams doing nothing, with one output per event, with a per-key state update plus
  an output (at least once), and the same with ``processing_guarantee="exactly-once"``.

The figures bound what any stage built on the engine can do here; pipeline_bench.py
measures MeterFlow's own stages end to end. Usage (a stack of its own on separate ports):
    .venv/bin/python bench/engine_ceiling.py [--messages 100000] [--commit-interval 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meterflow.settings import Settings  # noqa: E402
from meterflow.stack import local  # noqa: E402

PORTS = {"kafka_port": 23092, "kafka_controller_port": 23093, "pg_port": 23432,
         "mqtt_port": 23883, "worker_web_port": 23066}


def fill(bootstrap: str, topic: str, messages: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
    body = json.dumps({"meter_id": "M00001", "ts": "2026-07-01T10:00:00+08:00",
                       "value": "1234.56", "unit": "kWh", "source": "bench"}).encode()
    for i in range(messages):
        producer.send(topic, key=f"M{i % 2000:05d}".encode(), value=body)
    producer.flush()
    producer.close()


def kafka_python(bootstrap: str, topic: str, messages: int) -> float:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    first = 0.0
    for seen, _ in enumerate(consumer, 1):
        if seen == 1:
            first = time.perf_counter()
        if seen == messages:
            break
    elapsed = time.perf_counter() - first
    consumer.close()
    return messages / elapsed


def confluent(bootstrap: str, topic: str, messages: int) -> float:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, first = 0, 0.0
    while seen < messages:
        batch = consumer.consume(10_000, 1.0)
        if batch and not seen:
            first = time.perf_counter()
        seen += sum(1 for m in batch if m.error() is None)
    elapsed = time.perf_counter() - first
    consumer.close()
    return messages / elapsed


def quix(bootstrap: str, topic: str, messages: int, state_dir: Path, *, output: bool,
         state: bool, guarantee: str, commit_interval: float) -> float:
    from quixstreams import Application

    run = uuid.uuid4().hex[:6]
    app = Application(broker_address=bootstrap, consumer_group=f"ceiling-{run}",
                      auto_offset_reset="earliest", processing_guarantee=guarantee,
                      commit_interval=commit_interval, state_dir=str(state_dir / run),
                      loglevel="WARNING")
    source = app.topic(topic, key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(f"{topic}-out-{run}", key_serializer="bytes", value_serializer="bytes")
    frame = app.dataframe(source)
    seen = [0, 0.0]

    def count(value: Any) -> Any:
        if not seen[0]:
            seen[1] = time.perf_counter()
        seen[0] += 1
        if seen[0] == messages:
            seen[1] = time.perf_counter() - seen[1]
            app.stop()
        return value

    if state:
        def update(value: Any, st: Any) -> Any:
            st.set(b"n", (st.get(b"n") or 0) + 1)
            return value

        frame = frame.apply(update, stateful=True)
    if output:
        frame = frame.to_topic(sink)
    frame.apply(count)
    app.run()
    return messages / seen[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--commit-interval", type=float, default=0.25,
                        help="the engine's commit interval (the processors use 0.25 s)")
    args = parser.parse_args()
    state = Path(os.environ.get("METERFLOW_STATE_DIR", REPO / ".stack")) / "bench-engine"
    settings = Settings.model_validate({"state_dir": state, **PORTS})
    local.down(settings)
    shutil.rmtree(state, ignore_errors=True)
    local.up(settings)
    bootstrap = settings.bootstrap_servers
    topic = f"ceiling-{uuid.uuid4().hex[:6]}"
    try:
        fill(bootstrap, topic, args.messages)
        cases: list[tuple[str, Callable[[], float]]] = [
            ("kafka-python consume", lambda: kafka_python(bootstrap, topic, args.messages)),
            ("confluent-kafka consume", lambda: confluent(bootstrap, topic, args.messages)),
        ]
        for name, output, with_state, guarantee in (
                ("Quix Streams, nothing", False, False, "at-least-once"),
                ("Quix Streams, one output per event", True, False, "at-least-once"),
                ("Quix Streams, state + output, at least once", True, True, "at-least-once"),
                ("Quix Streams, state + output, exactly once", True, True, "exactly-once")):
            cases.append((name, lambda o=output, s=with_state, g=guarantee: quix(
                bootstrap, topic, args.messages, state, output=o, state=s, guarantee=g,
                commit_interval=args.commit_interval)))
        print(f"{args.messages:,} messages, 4 partitions, commit interval "
              f"{args.commit_interval} s")
        for name, case in cases:
            print(f"{name:48s} {case():>10,.0f} events/s", flush=True)
    finally:
        local.down(settings)


if __name__ == "__main__":
    main()
