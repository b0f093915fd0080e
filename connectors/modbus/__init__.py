"""Modbus connector: register maps, decoding, polling and relay control.

Kept apart as pymodbus keeps its own layers apart:

* :mod:`connectors.modbus.registermap` - the register map model, validated with pydantic;
* :mod:`connectors.modbus.maploader` - reading map files (YAML, exact decimals);
* :mod:`connectors.modbus.codec` - register words to Decimal values and block planning (pure);
* :mod:`connectors.modbus.poller` - requests through pymodbus asyncio clients;
* :mod:`meterflow.subcommands.poll` - the ``meterflow poll`` commands.
"""

from connectors.modbus.codec import (
    Block,
    decode_block,
    decode_quantity,
    encode_quantity,
    plan_blocks,
)
from connectors.modbus.errors import (
    DecodeError,
    MapError,
    ModbusConnectorError,
    ReadFailure,
    RelayNotSupported,
)
from connectors.modbus.maploader import load_map, parse_map, shipped_maps
from connectors.modbus.poller import (
    ConnectFailure,
    Meter,
    ModbusPoller,
    SerialEndpoint,
    TcpEndpoint,
)
from connectors.modbus.reading import PollResult, ReadError, Reading
from connectors.modbus.registermap import RegisterMap

__all__ = [
    "Block",
    "ConnectFailure",
    "DecodeError",
    "MapError",
    "Meter",
    "ModbusConnectorError",
    "ModbusPoller",
    "PollResult",
    "ReadError",
    "ReadFailure",
    "Reading",
    "RegisterMap",
    "RelayNotSupported",
    "SerialEndpoint",
    "TcpEndpoint",
    "decode_block",
    "decode_quantity",
    "encode_quantity",
    "load_map",
    "parse_map",
    "plan_blocks",
    "shipped_maps",
]
