"""Register words to values and back: pure functions, no I/O.

Integers (uint16/int16/uint32/int32) are decoded exactly as ``raw * scale``.

float32 values are decoded from their IEEE 754 bits, then converted with
``Decimal(str(value))`` (the shortest decimal that round-trips the value once widened to
a Python float) and multiplied by the scale, and finally rounded half-even to the map's
declared ``decimals``. A float32 only carries about 7 significant digits, so the
declared decimals must not ask for more than the meter really resolves (for example the
Eastron SDM120 total energy: 2 decimals in kWh). NaN and infinities are refused.

32-bit values use the map's ``word_order`` (``high_first`` is the Modbus convention, as
in the Acrel and Eastron manuals) and ``byte_order`` inside each word (``big`` unless a
meter swaps bytes).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from connectors.modbus.errors import DecodeError
from connectors.modbus.registermap import (
    ByteOrder,
    DataType,
    Quantity,
    RegisterMap,
    Table,
    WordOrder,
)

_SIGNED = {DataType.INT16, DataType.INT32}


def _words_to_bytes(words: Sequence[int], q: Quantity) -> bytes:
    if len(words) != q.words:
        raise DecodeError(q.name, q.address, f"expected {q.words} word(s), got {len(words)}")
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise DecodeError(q.name, q.address, f"word {w} is not a 16-bit value")
    ordered = list(words)
    if q.word_order is WordOrder.LOW_FIRST:
        ordered.reverse()
    endian: Literal["big", "little"] = "big" if q.byte_order is ByteOrder.BIG else "little"
    return b"".join(w.to_bytes(2, endian) for w in ordered)


def _bytes_to_words(data: bytes, q: Quantity) -> list[int]:
    endian: Literal["big", "little"] = "big" if q.byte_order is ByteOrder.BIG else "little"
    words = [int.from_bytes(data[i : i + 2], endian) for i in range(0, len(data), 2)]
    if q.word_order is WordOrder.LOW_FIRST:
        words.reverse()
    return words


def raw_value(q: Quantity, words: Sequence[int]) -> int | float:
    """The unscaled number held by ``words`` (an int, or a float for float32)."""
    data = _words_to_bytes(words, q)
    if q.type is DataType.FLOAT32:
        return float(struct.unpack(">f", data)[0])
    return int.from_bytes(data, "big", signed=q.type in _SIGNED)


def _round(q: Quantity, value: Decimal) -> Decimal:
    if q.decimals is not None:
        value = value.quantize(Decimal(1).scaleb(-q.decimals), rounding=ROUND_HALF_EVEN)
    return value.copy_abs() if value.is_zero() else value


def decode_quantity(q: Quantity, words: Sequence[int]) -> Decimal:
    """Decode one quantity's words into a scaled, rounded, range-checked Decimal."""
    raw = raw_value(q, words)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise DecodeError(q.name, q.address, f"float32 value is {raw}")
        value = Decimal(str(raw)) * q.scale
    else:
        value = Decimal(raw) * q.scale
    value = _round(q, value)
    if (q.valid_min is not None and value < q.valid_min) or (
        q.valid_max is not None and value > q.valid_max
    ):
        low = "-inf" if q.valid_min is None else str(q.valid_min)
        high = "inf" if q.valid_max is None else str(q.valid_max)
        unit = f" {q.unit}" if q.unit else ""
        raise DecodeError(q.name, q.address, f"value {value}{unit} outside [{low}, {high}]")
    return value


def encode_quantity(q: Quantity, value: Decimal) -> list[int]:
    """Register words a meter would hold for ``value`` (for simulators and tests)."""
    raw = value / q.scale
    if q.type is DataType.FLOAT32:
        return _bytes_to_words(struct.pack(">f", float(raw)), q)
    integral = raw.to_integral_value(rounding=ROUND_HALF_EVEN)
    bits = 16 * q.words
    signed = q.type in _SIGNED
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= integral <= high:
        raise DecodeError(q.name, q.address, f"{value} does not fit {q.type}")
    return _bytes_to_words(int(integral).to_bytes(bits // 8, "big", signed=signed), q)


@dataclass(frozen=True)
class Block:
    """One read request: ``count`` registers from ``start`` in ``table``."""

    table: Table
    start: int
    count: int
    quantities: tuple[Quantity, ...]

    @property
    def end(self) -> int:
        return self.start + self.count


def plan_blocks(regmap: RegisterMap, names: Iterable[str] | None = None) -> list[Block]:
    """Coalesce the map's quantities into as few block reads as its limits allow.

    Quantities of the same table are merged while the block stays within
    ``max_block`` registers and the hole between two quantities is at most
    ``max_gap`` registers (0: only strictly contiguous registers are merged).
    """
    wanted = set(names) if names is not None else None
    by_table: dict[Table, list[Quantity]] = {}
    for q in regmap.quantities:
        if wanted is None or q.name in wanted:
            by_table.setdefault(regmap.table_of(q), []).append(q)
    blocks: list[Block] = []
    for table in sorted(by_table):
        current: list[Quantity] = []
        start = end = 0
        for q in sorted(by_table[table], key=lambda item: item.address):
            q_end = q.address + q.words
            if current and (q.address - end > regmap.max_gap or q_end - start > regmap.max_block):
                blocks.append(Block(table, start, end - start, tuple(current)))
                current = []
            if not current:
                start = q.address
            current.append(q)
            end = q_end
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks


def decode_block(block: Block, words: Sequence[int]) -> dict[str, Decimal]:
    """Decode every quantity of ``block`` from the words one read returned."""
    if len(words) != block.count:
        first = block.quantities[0]
        raise DecodeError(
            first.name, block.start, f"read returned {len(words)} words, expected {block.count}"
        )
    values: dict[str, Decimal] = {}
    for q in block.quantities:
        offset = q.address - block.start
        values[q.name] = decode_quantity(q, words[offset : offset + q.words])
    return values
