"""Create the project's topics (idempotent) with explicit partitions and configs."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from contracts.topics import TOPICS
from meterflow.settings import Settings


def create_topics(settings: Settings) -> list[str]:
    """Create missing topics; return the names created now."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, client_id="meterflow-topics",
        request_timeout_ms=15000,
    )
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions or settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=spec.configs(),
            )
            for spec in TOPICS
            if spec.name not in existing
        ]
        created: list[str] = []
        for topic in wanted:
            try:
                admin.create_topics([topic], timeout_ms=15000)
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
