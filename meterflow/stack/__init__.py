"""The local stack: Kafka (KRaft), PostgreSQL 15 with TimescaleDB, and Mosquitto as local processes."""
