"""The webhook signature, computed here from its definition, and a receiver's check."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx

from connectors.notify.channels import Message
from connectors.notify.policy import Outcome
from connectors.notify.webhook import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Webhook,
    sign,
    verify,
)

NOW = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)


def test_signature_definition() -> None:
    body = '{"a":"余额"}'.encode()
    expected = hmac.new(b"s3cret", b"1782871200." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1782871200, body) == "v1=" + expected


def test_verify_refuses_tampering_and_stale_timestamps() -> None:
    body = b'{"x":1}'
    stamp = int(NOW.timestamp())
    good = sign("k", stamp, body)
    assert verify("k", str(stamp), good, body, NOW)
    assert not verify("k", str(stamp), good, body + b" ", NOW)
    assert not verify("other", str(stamp), good, body, NOW)
    assert not verify("k", str(stamp - 301), sign("k", stamp - 301, body), body, NOW)
    assert not verify("k", "soon", good, body, NOW)


def message() -> Message:
    return Message("notification-1", "offline", "en", "Meter M1 is offline", "text",
                   {"meter": "M1"}, {"kind": "offline"})


def test_webhook_posts_the_signed_document() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    hook = Webhook({"ops": ("http://hooks.invalid/in", "k")},
                   httpx.Client(transport=httpx.MockTransport(answer)), lambda: NOW)
    payload = hook.compose(message(), "ops")
    result = hook.send("ops", payload, "notification-1", 5)
    assert result.outcome is Outcome.DELIVERED
    request = seen[0]
    assert request.headers[ID_HEADER] == "notification-1"
    assert verify("k", request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER],
                  request.content, NOW)
    assert json.loads(request.content)["subject"] == "Meter M1 is offline"


def test_webhook_outcomes() -> None:
    for status, outcome in ((500, Outcome.RETRY), (429, Outcome.RETRY),
                            (400, Outcome.FAILED), (200, Outcome.DELIVERED)):
        hook = Webhook({"ops": ("http://hooks.invalid/in", "k")}, httpx.Client(
            transport=httpx.MockTransport(lambda _r, s=status: httpx.Response(s))))
        assert hook.send("ops", hook.compose(message(), "ops"), "n", 5).outcome is outcome
    hook = Webhook({}, httpx.Client())
    missing = hook.send("nowhere", {"document": {}}, "n", 5)
    assert missing.outcome is Outcome.FAILED and "no webhook endpoint named" in missing.detail

    def refuse(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    down = Webhook({"ops": ("http://hooks.invalid/in", "k")},
                   httpx.Client(transport=httpx.MockTransport(refuse)))
    result = down.send("ops", {"document": {}}, "n", 5)
    assert result.outcome is Outcome.RETRY and "hooks.invalid" not in result.detail
