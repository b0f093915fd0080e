"""Meters and gateways as MQTT devices: their credentials and which meters a gateway
speaks for (docs/contracts.md#mqtt-users-and-rights)."""
