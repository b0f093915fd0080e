"""The contracts every layer may import: topic names, the payload of every topic, ids,
money, band names, the clock type and the report zone (docs/contracts.md). Pure: no I/O,
no import of any other MeterFlow package (docs/architecture.md, layers)."""
