"""CJ/T 188-2004 household meter (water, heat, gas) protocol: sans-IO codec.

Bytes in, frames out; no sockets, no asyncio. Public API::

    encode_read(meter_type, address, di="901F") -> bytes
    encode_valve(meter_type, address, action) -> bytes
    encode_read_response(meter_type, address, volume, ...) -> bytes        # meter side
    encode_valve_response / encode_error_response
    decode(frame_bytes, *, tz=None) -> Frame
    encode(frame) -> bytes
    StreamParser().feed(bytes) -> list[Frame | Corrupt]; .flush()
"""

from connectors.cjt188.codec import (
    Frame,
    decode,
    encode,
    encode_error_response,
    encode_read,
    encode_read_response,
    encode_valve,
    encode_valve_response,
    looks_like,
)
from connectors.cjt188.describe import describe
from connectors.cjt188.frame import BROADCAST, Function
from connectors.cjt188.identifiers import (
    DI_METERING,
    DI_VALVE,
    METER_TYPES,
    UNITS,
    Status,
    ValveState,
    parse_di,
)
from connectors.cjt188.messages import (
    Body,
    ErrorResponse,
    MeteringData,
    OtherMessage,
    ReadRequest,
    ValveAction,
    ValveCommand,
    WriteRequest,
    WriteResponse,
)
from connectors.cjt188.stream import StreamParser
from connectors.codec_errors import Cjt188Error
from connectors.codec_stream import Corrupt

__all__ = [
    "BROADCAST",
    "DI_METERING",
    "DI_VALVE",
    "METER_TYPES",
    "UNITS",
    "Body",
    "Cjt188Error",
    "Corrupt",
    "ErrorResponse",
    "Frame",
    "Function",
    "MeteringData",
    "OtherMessage",
    "ReadRequest",
    "Status",
    "StreamParser",
    "ValveAction",
    "ValveCommand",
    "ValveState",
    "WriteRequest",
    "WriteResponse",
    "decode",
    "describe",
    "encode",
    "encode_error_response",
    "encode_read",
    "encode_read_response",
    "encode_valve",
    "encode_valve_response",
    "looks_like",
    "parse_di",
]
