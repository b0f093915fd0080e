"""Errors of the Modbus connector.

Every error names what is wrong: the map file and field for register maps, and the
meter, unit id and register for anything that happens on the wire.
"""

from __future__ import annotations


class ModbusConnectorError(Exception):
    """Base of every error raised by ``connectors.modbus``."""


class MapError(ModbusConnectorError, ValueError):
    """A register map file is missing, unreadable or invalid.

    ``source`` is the file (or map name) and ``problems`` the list of
    ``(field path, message)`` pairs found by validation.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{field}: {msg}" if field else msg for field, msg in problems]
        super().__init__(f"invalid register map {source}: " + "; ".join(lines))


class DecodeError(ModbusConnectorError, ValueError):
    """Register words could not be turned into a value (bad length, NaN, out of range)."""

    def __init__(self, quantity: str, address: int, reason: str) -> None:
        self.quantity = quantity
        self.address = address
        self.reason = reason
        super().__init__(f"register 0x{address:04X} ({quantity}): {reason}")


class ReadFailure(ModbusConnectorError):
    """A request to a meter failed: no connection, timeout, or an exception response."""

    def __init__(self, meter: str, unit: int, reason: str, *, register: int | None = None) -> None:
        self.meter = meter
        self.unit = unit
        self.register = register
        self.reason = reason
        where = f"meter {meter} unit {unit}"
        if register is not None:
            where += f" register 0x{register:04X}"
        super().__init__(f"{where}: {reason}")


class RelayNotSupported(ModbusConnectorError):
    """The meter model has no relay, or its relay control is not verified."""
