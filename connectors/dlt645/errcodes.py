"""DL/T 645-2007 Appendix C: the error information word (ERR).

An abnormal reply (control code with D6 = 1, e.g. 0xD1 for read, 0xDC for relay
control) carries one ERR byte; each bit names one reason:

====  ==========================================================
bit   meaning
====  ==========================================================
D0    other error
D1    no requested data (unknown or unsupported DI)
D2    password error / not authorised
D3    baud rate cannot be changed
D4    too many year time zones
D5    too many daily time periods
D6    too many rates
D7    reserved
====  ==========================================================
"""

from __future__ import annotations

ERROR_FLAGS: tuple[str, ...] = (
    "other-error",
    "no-requested-data",
    "password-error-or-unauthorised",
    "baud-rate-unchangeable",
    "too-many-year-zones",
    "too-many-daily-periods",
    "too-many-rates",
    "reserved",
)


def error_flags(code: int) -> list[str]:
    """The names of the bits set in an ERR byte, D0 first."""
    return [name for bit, name in enumerate(ERROR_FLAGS) if code >> bit & 1]


def error_code(flags: list[str] | tuple[str, ...]) -> int:
    """The ERR byte with the named bits set (inverse of :func:`error_flags`)."""
    code = 0
    for name in flags:
        code |= 1 << ERROR_FLAGS.index(name)
    return code
