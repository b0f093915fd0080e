"""Payments: ``request`` (amounts and the request as values, pure) and ``store`` (the
payment and its outbox row in one transaction)."""
