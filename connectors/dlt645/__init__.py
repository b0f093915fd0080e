"""DL/T 645-2007 multi-function watt-hour meter protocol: sans-IO codec.

Bytes in, frames out; no sockets, no asyncio. Public API::

    encode_read(address, di) -> bytes
    encode_relay(address, action, *, password_level, password, operator, expires) -> bytes
    encode_time_sync(when) -> bytes
    encode_read_response(address, di, value) -> bytes          # meter side
    encode_read_error / encode_relay_response / encode_relay_error / encode_error_response
    decode(frame_bytes, *, tz=None) -> Frame
    encode(frame) -> bytes
    StreamParser().feed(bytes) -> list[Frame | Corrupt]; .flush()
"""

from connectors.codec_errors import Dlt645Error
from connectors.codec_stream import Corrupt
from connectors.dlt645.codec import (
    Frame,
    decode,
    encode,
    encode_error_response,
    encode_read,
    encode_read_error,
    encode_read_response,
    encode_relay,
    encode_relay_error,
    encode_relay_response,
    encode_time_sync,
    looks_like,
)
from connectors.dlt645.describe import describe
from connectors.dlt645.errcodes import ERROR_FLAGS, error_code, error_flags
from connectors.dlt645.frame import BROADCAST, WILDCARD, Function
from connectors.dlt645.identifiers import REGISTRY, DataItem, MeterDate, Value, lookup, parse_di
from connectors.dlt645.messages import (
    Body,
    ErrorResponse,
    OtherMessage,
    ReadRequest,
    ReadResponse,
    RelayAction,
    RelayCommand,
    RelayResponse,
    TimeSync,
)
from connectors.dlt645.stream import StreamParser

__all__ = [
    "BROADCAST",
    "ERROR_FLAGS",
    "REGISTRY",
    "WILDCARD",
    "Body",
    "Corrupt",
    "DataItem",
    "Dlt645Error",
    "ErrorResponse",
    "Frame",
    "Function",
    "MeterDate",
    "OtherMessage",
    "ReadRequest",
    "ReadResponse",
    "RelayAction",
    "RelayCommand",
    "RelayResponse",
    "StreamParser",
    "TimeSync",
    "Value",
    "decode",
    "describe",
    "encode",
    "encode_error_response",
    "encode_read",
    "encode_read_error",
    "encode_read_response",
    "encode_relay",
    "encode_relay_error",
    "encode_relay_response",
    "encode_time_sync",
    "error_code",
    "error_flags",
    "looks_like",
    "lookup",
    "parse_di",
]
