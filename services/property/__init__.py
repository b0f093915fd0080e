"""Property billing services: custom charges, apportionment, postpaid bills (docs/tariffs.md)."""
