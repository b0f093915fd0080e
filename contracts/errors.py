"""The one error of every topic payload that cannot be read (docs/contracts.md):
``reason`` names the field and the problem; a consumer turns it into a dead letter."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class PayloadError(ValueError):
    """A payload that does not fit its topic's schema; ``reason`` names what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_object(raw: bytes | None, *, parse_float: Callable[[str], Any] | None = None,
                parse_int: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """A payload's JSON object; PayloadError saying why it is not one. ``parse_float`` and
    ``parse_int`` read numbers from their text (a register is never a binary float);
    NaN and Infinity are refused."""
    if not raw:
        raise PayloadError("empty message")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"not UTF-8 at byte {exc.start}") from exc
    try:
        body = json.loads(text, parse_float=parse_float, parse_int=parse_int,
                          parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(body, dict):
        raise PayloadError(f"expected a JSON object, got {type(body).__name__}")
    return body


def _refuse_constant(name: str) -> Any:
    raise PayloadError(f"not valid JSON: {name} is not a number")


class RefusedRequest(ValueError):
    """An operator's request that cannot be done: ``field`` names the culprit, ``reason``
    says why and ``status`` is the answer the API gives (docs/api.md, errors)."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status
