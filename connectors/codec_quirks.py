"""Vendor quirks of real meters, kept in one settings object.

The standards leave some room and the installed base uses all of it:

* DL/T 645-2007 §5.1.2: the master sends FE wake-up bytes before a frame; most
  masters send four, some meters need more on long RS-485/carrier links, and many
  meters answer without any preamble (the decoders accept 0..n FE in every case).
* CJ/T 188-2004 §6.1: "send 2~4 bytes FEH before the frame"; four is common.
* CJ/T 188-2004 abnormal replies: the standard's layout is SER + ST; some meters
  put the DI in front (DI + SER + ST). Both are decoded; ``cjt188_abnormal_with_di``
  chooses what the encoder produces.
* Meter clocks carry no time zone; ``meter_tz`` is the zone they are set to.

Pass a :class:`CodecQuirks` to the encoders/decoders to deviate from the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class CodecQuirks:
    """Per-installation deviations from the textbook frame (see module docstring)."""

    dlt645_wakeup_bytes: int = 4
    cjt188_wakeup_bytes: int = 4
    #: DL/T 645-2007 §5.1.5: L <= 200 for reads (writes <= 50); longer frames are refused.
    dlt645_max_data_len: int = 200
    #: CJ/T 188-2004 §5.1.5: L <= 64H for reads (writes <= 32H).
    cjt188_max_data_len: int = 0x64
    cjt188_abnormal_with_di: bool = False
    meter_tz: ZoneInfo = field(default=DEFAULT_TZ)

    def clock_zone(self, tz: tzinfo | None) -> tzinfo:
        """The zone of a meter's clock: ``tz`` when given, else ``meter_tz``."""
        return self.meter_tz if tz is None else tz


DEFAULT_QUIRKS = CodecQuirks()
