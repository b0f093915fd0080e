"""Field types shared by the request models: ids, free text, money, days.

Money (docs/architecture.md, invariants): amounts arrive as yuan decimal strings with at
most two places and become integer fen here; a JSON number is refused with a message saying
so, because its binary value is not what was typed. Free text refuses NUL (PostgreSQL cannot
store it), so bad input is a 422 naming the field, never a database error. """

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from services.payments.request import InvalidPayment, parse_yuan

ID_RE = r"^[A-Za-z0-9._:-]{1,64}$"
TARIFF_ID_RE = r"^[A-Za-z0-9._-]{1,64}$"
KEY_RE = r"^[A-Za-z0-9._:-]{1,128}$"
YUAN_RE = r"^[0-9]{1,13}(\.[0-9]{1,2})?$"
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2199, 12, 31)


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    if any("\ud800" <= c <= "\udfff" for c in text):
        raise ValueError("must not contain lone surrogates (not valid Unicode text)")
    return text


def _fen(allow_zero: bool) -> BeforeValidator:
    def convert(value: object) -> int:
        if isinstance(value, bool | int | float):
            raise ValueError(f"{value!r} is a JSON number: give yuan as a decimal string "
                             "such as \"12.50\" (at most 2 places)")
        try:
            return parse_yuan(value, "amount", allow_zero=allow_zero)
        except InvalidPayment as exc:
            raise ValueError(exc.reason) from None
    return BeforeValidator(convert)


def _day(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"{value} is outside {FIRST_DAY}..{LAST_DAY}")
    return value


Id = Annotated[str, Field(pattern=ID_RE, examples=["A-101"])]
TariffId = Annotated[str, Field(pattern=TARIFF_ID_RE)]
Name = Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]
Note = Annotated[str, Field(max_length=500), AfterValidator(_no_nul)]
_YUAN_SCHEMA = {"type": "string", "pattern": YUAN_RE, "examples": ["100.50"]}
#: Yuan text in, integer fen inside; greater than zero.
Fen = Annotated[int, _fen(False), WithJsonSchema(_YUAN_SCHEMA)]
#: Yuan text in, integer fen inside; zero allowed (thresholds, overdraft).
FenOrZero = Annotated[int, _fen(True), WithJsonSchema(_YUAN_SCHEMA)]
Day = Annotated[date, AfterValidator(_day)]
