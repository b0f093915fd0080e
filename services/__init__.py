"""The services the interfaces call: accounts, payments, the outbox relay, reconciliation
and device credentials. They work in PostgreSQL in the caller's transaction and take
their settings as arguments (docs/architecture.md, layers)."""
