"""What every channel adapter offers, and the HTTP outcome rules they share.

An adapter has two halves. ``compose`` is pure: it turns a rendered message into the
channel's request content (template code and parameters, WeChat data, an e-mail) and runs
at intake, so a template error is found while the event can still go to the dead-letter
topic; the result is stored with the notification. ``send`` does the I/O of one attempt and
says :class:`~connectors.notify.policy.Outcome` ``DELIVERED``, ``RETRY`` (may succeed
later) or ``FAILED`` (refused for good), with a detail that never contains a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from connectors.notify.policy import Outcome


@dataclass(frozen=True)
class Message:
    """One rendered message for one recipient."""

    notification_id: str
    kind: str
    language: str
    subject: str
    text: str
    variables: dict[str, str]
    event: dict[str, Any]

    @classmethod
    def from_stored(cls, notification_id: str, kind: str, language: str,
                    stored: dict[str, Any]) -> Message:
        return cls(notification_id, kind, language, str(stored.get("subject", "")),
                   str(stored.get("text", "")), dict(stored.get("variables", {})),
                   dict(stored.get("event", {})))


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    detail: str


class Channel(Protocol):
    name: str

    def compose(self, message: Message, recipient: str) -> dict[str, Any]: ...

    def send(self, recipient: str, payload: dict[str, Any], notification_id: str,
             timeout: float) -> Result: ...


#: HTTP statuses worth another try: timeout, too early, throttled, and server errors.
RETRY_STATUSES = frozenset({408, 425, 429})


def status_outcome(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in RETRY_STATUSES or status >= 500:
        return Outcome.RETRY
    return Outcome.FAILED


def transport_failure(exc: httpx.HTTPError) -> Result:
    """A request that got no HTTP answer: worth another try (the URL is not shown)."""
    return Result(Outcome.RETRY, f"{type(exc).__name__}: no answer from the gateway")


def short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
