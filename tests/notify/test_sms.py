"""SMS and voice requests: parameters, a signature checked from the spec, answers mapped."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

import httpx
import pytest

from connectors.notify.channels import Message
from connectors.notify.config import ProviderTemplate
from connectors.notify.policy import Outcome
from connectors.notify.sms import AliyunRpc, AliyunSms, WebhookSms
from connectors.notify.templates import TemplateError
from connectors.notify.voice import AliyunVoice
from connectors.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

NOW = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)


def spec_signature(secret: str, form: dict[str, str]) -> str:
    """Written from the documentation, apart from the code under test."""
    def enc(s: str) -> str:
        return quote(s, safe="-_.~")
    query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(form.items()) if k != "Signature")
    text = "POST&" + enc("/") + "&" + enc(query)
    return base64.b64encode(hmac.new((secret + "&").encode(), text.encode(),
                                     hashlib.sha1).digest()).decode()


class Gateway:
    def __init__(self, answer: dict | None = None, status: int = 200) -> None:
        self.forms: list[dict[str, str]] = []
        self.answer = answer or {"Code": "OK", "Message": "OK", "BizId": "B1", "CallId": "C1"}
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(dict(parse_qsl(request.content.decode(), keep_blank_values=True)))
        return httpx.Response(self.status, json=self.answer)


def rpc(gateway: Gateway) -> AliyunRpc:
    return AliyunRpc("https://dysmsapi.invalid/", "LTAI-id", "key-secret", "cn-hangzhou",
                     httpx.Client(transport=httpx.MockTransport(gateway)), lambda: NOW,
                     nonce=lambda: "nonce-1")


def message(kind: str = "low_balance") -> Message:
    return Message("n-1", kind, "zh", "s", "余额不足", {"balance": "19.90", "account": "A1",
                                                      "level": "2"}, {})


def test_send_sms_request() -> None:
    gateway = Gateway()
    sms = AliyunSms(rpc(gateway), "美宜能源", {"low_balance": ProviderTemplate(
        code="SMS_1", params=("account", "balance"))})
    payload = sms.compose(message(), "13800000001")
    assert payload == {"TemplateCode": "SMS_1",
                       "TemplateParam": '{"account":"A1","balance":"19.90"}'}
    result = sms.send("13800000001", payload, "n-1", 5)
    assert result.outcome is Outcome.DELIVERED and result.detail == "BizId B1"
    form = gateway.forms[0]
    assert form["Signature"] == spec_signature("key-secret", form)
    assert {k: form[k] for k in ("Action", "Version", "PhoneNumbers", "SignName",
                                 "TemplateCode", "OutId", "Timestamp", "SignatureNonce")} == {
        "Action": "SendSms", "Version": "2017-05-25", "PhoneNumbers": "13800000001",
        "SignName": "美宜能源", "TemplateCode": "SMS_1", "OutId": "n-1",
        "Timestamp": "2026-07-01T02:00:00Z", "SignatureNonce": "nonce-1"}
    assert json.loads(form["TemplateParam"]) == {"account": "A1", "balance": "19.90"}


def test_missing_template_or_variable_is_a_template_error() -> None:
    sms = AliyunSms(rpc(Gateway()), "s", {"low_balance": ProviderTemplate(
        code="SMS_1", params=("threshold",))})
    with pytest.raises(TemplateError, match=r"params: variable \{threshold\} has no value"):
        sms.compose(message(), "1")
    with pytest.raises(TemplateError, match="no SMS template code for offline"):
        sms.compose(message("offline"), "1")


@pytest.mark.parametrize(("answer", "status", "outcome"), [
    ({"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "flow"}, 200, Outcome.RETRY),
    ({"Code": "isp.SYSTEM_ERROR", "Message": "x"}, 200, Outcome.RETRY),
    ({"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "bad"}, 200, Outcome.FAILED),
    ({"Code": "SignatureDoesNotMatch", "Message": "sig"}, 400, Outcome.FAILED),
    ({"Code": "InternalError", "Message": "x"}, 500, Outcome.RETRY),
])
def test_answers(answer: dict, status: int, outcome: Outcome) -> None:
    sms = AliyunSms(rpc(Gateway(answer, status)), "s",
                    {"low_balance": ProviderTemplate(code="SMS_1")})
    result = sms.send("1", sms.compose(message(), "1"), "n", 5)
    assert result.outcome is outcome and answer["Code"] in result.detail
    assert "key-secret" not in result.detail


def test_voice_request() -> None:
    gateway = Gateway()
    voice = AliyunVoice(rpc(gateway), "057100000000", {"disconnect": ProviderTemplate(
        code="TTS_1", params=("account",))})
    result = voice.send("13800000001", voice.compose(message("disconnect"), "1"), "n-1", 5)
    assert result.outcome is Outcome.DELIVERED and result.detail == "CallId C1"
    form = gateway.forms[0]
    assert form["Signature"] == spec_signature("key-secret", form)
    assert (form["Action"], form["CalledNumber"], form["CalledShowNumber"], form["TtsCode"],
            form["TtsParam"]) == ("SingleCallByTts", "13800000001", "057100000000", "TTS_1",
                                  '{"account":"A1"}')


def test_webhook_sms() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    sms = WebhookSms("https://sms.invalid/send", "k",
                     httpx.Client(transport=httpx.MockTransport(answer)), lambda: NOW)
    assert sms.send("13800000001", sms.compose(message(), "1"), "n-1", 5).outcome is \
        Outcome.DELIVERED
    body = json.loads(seen[0].content)
    assert body == {"notification_id": "n-1", "phone": "13800000001", "text": "余额不足",
                    "language": "zh", "kind": "low_balance"}
    assert verify("k", seen[0].headers[TIMESTAMP_HEADER], seen[0].headers[SIGNATURE_HEADER],
                  seen[0].content, NOW)
