"""The local stack: Kafka (KRaft), PostgreSQL 15 + TimescaleDB and Mosquitto, as processes."""
