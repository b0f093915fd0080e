"""Accounts: ``spec`` (what is asked, validated without I/O), ``store`` (open and show),
``changes`` (room, customer, reconnect level, keep-supply, tariffs by id)."""
