"""Signed webhooks: a JSON POST that the receiver can authenticate and date.

Headers of every request (docs/contracts.md, "Webhook signature"):

* ``X-MeterFlow-Timestamp``: Unix time in seconds when the request was signed;
* ``X-MeterFlow-Signature``: ``v1=`` + lower-case hex HMAC-SHA256 (RFC 2104) keyed with the
  endpoint's secret over ``<timestamp> + "." + <the exact body bytes>``;
* ``X-MeterFlow-Notification-Id``: the notification id, the same on every retry, so a
  receiver can drop a repeat.

A receiver recomputes the HMAC over the raw body it received (before any JSON parsing),
compares in constant time, and refuses a timestamp more than five minutes away from its
clock (a replayed request). :func:`verify` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import httpx

from connectors.notify.channels import (
    Message,
    Result,
    short,
    status_outcome,
    transport_failure,
)
from connectors.notify.policy import Outcome
from contracts.clock import Clock, utc_now

TIMESTAMP_HEADER = "X-MeterFlow-Timestamp"
SIGNATURE_HEADER = "X-MeterFlow-Signature"
ID_HEADER = "X-MeterFlow-Notification-Id"
TOLERANCE_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, signature: str, body: bytes, now: datetime,
           tolerance_s: int = TOLERANCE_S) -> bool:
    """What a receiver checks: a fresh timestamp and a matching signature."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now.timestamp() - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode()


def post_signed(client: httpx.Client, url: str, secret: str, body: bytes,
                notification_id: str, now: datetime, timeout: float) -> Result:
    stamp = int(now.timestamp())
    headers = {"Content-Type": "application/json; charset=utf-8", TIMESTAMP_HEADER: str(stamp),
               SIGNATURE_HEADER: sign(secret, stamp, body), ID_HEADER: notification_id}
    try:
        response = client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return transport_failure(exc)
    outcome = status_outcome(response.status_code)
    detail = f"HTTP {response.status_code}"
    if outcome is not Outcome.DELIVERED:
        detail += f": {short(response.text, 200)}"
    return Result(outcome, detail)


class Webhook:
    """Named endpoints (URL and secret); a rule's recipient is the endpoint's name."""

    name = "webhook"

    def __init__(self, endpoints: dict[str, tuple[str, str]], client: httpx.Client,
                 clock: Clock = utc_now) -> None:
        self._endpoints = endpoints  # name -> (url, secret)
        self._client = client
        self._clock = clock

    def __repr__(self) -> str:
        return f"Webhook(endpoints={sorted(self._endpoints)})"

    def compose(self, message: Message, recipient: str) -> dict[str, Any]:
        return {"document": {
            "notification_id": message.notification_id, "kind": message.kind,
            "language": message.language, "subject": message.subject, "text": message.text,
            "variables": message.variables, "event": message.event,
        }}

    def send(self, recipient: str, payload: dict[str, Any], notification_id: str,
             timeout: float) -> Result:
        endpoint = self._endpoints.get(recipient)
        if endpoint is None:
            return Result(Outcome.FAILED, f"no webhook endpoint named {recipient!r} is "
                                          "configured (channels.webhook)")
        url, secret = endpoint
        return post_signed(self._client, url, secret, encode(payload["document"]),
                           notification_id, self._clock(), timeout)
