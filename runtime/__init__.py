"""What every long-running process shares below the services: the health endpoint, the
doubling wait of reconnect loops and the partition assignment of plain Kafka consumers
(docs/architecture.md, layers)."""
