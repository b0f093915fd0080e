"""SMS: Alibaba Cloud ``SendSms`` (signed RPC call), or a generic signed HTTP gateway.

``SendSms`` (API version 2017-05-25) takes ``PhoneNumbers``, ``SignName``, ``TemplateCode``
and ``TemplateParam`` (a JSON object of the template's variables) and ``OutId`` (here the
notification id, so the provider's records name it). The template text itself is
registered with the provider; the configuration names, per event kind, its code and the
variables it takes. The answer's ``Code`` is ``OK`` when accepted; throttling and system
errors are tried again, anything else (an invalid number, a wrong signature, an unknown
template) fails for good.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from connectors.notify import aliyun
from connectors.notify.channels import (
    Message,
    Result,
    short,
    status_outcome,
    transport_failure,
)
from connectors.notify.config import ProviderTemplate
from connectors.notify.policy import Outcome
from connectors.notify.templates import TemplateError
from connectors.notify.webhook import encode, post_signed
from contracts.clock import Clock, utc_now

SMS_VERSION = "2017-05-25"
#: Provider codes worth another try (flow control, throttling, the provider's own faults).
RETRY_CODES = frozenset({"isp.SYSTEM_ERROR", "isv.BUSINESS_LIMIT_CONTROL", "Throttling",
                         "Throttling.User", "Throttling.Api", "ServiceUnavailable",
                         "InternalError", "isp.GATEWAY_ERROR", "SignatureNonceUsed"})


def template_params(template: ProviderTemplate, message: Message, where: str
                    ) -> dict[str, str]:
    """The variables a provider template takes, by name, from the message."""
    params: dict[str, str] = {}
    for name in template.params:
        if name not in message.variables:
            raise TemplateError(f"{where}.params: variable {{{name}}} has no value for a "
                                f"{message.kind} event")
        params[name] = message.variables[name]
    return params


def template_request(templates: dict[str, ProviderTemplate], message: Message, channel: str,
                     label: str, fields: tuple[str, str]) -> dict[str, Any]:
    """A provider template's code and its JSON variables under the action's field names
    (``fields``: code, variables), for the event ``message`` announces."""
    where = f"channels.{channel}.templates.{message.kind}"
    template = templates.get(message.kind)
    if template is None:
        raise TemplateError(f"{where}: no {label} template code for {message.kind}")
    params = template_params(template, message, where)
    return {fields[0]: template.code,
            fields[1]: json.dumps(params, ensure_ascii=False, separators=(",", ":"))}


class AliyunRpc:
    """One signed ``POST`` of an Alibaba Cloud RPC action, and what its answer means."""

    def __init__(self, endpoint: str, access_key_id: str, secret: str, region_id: str,
                 client: httpx.Client, clock: Clock = utc_now,
                 nonce: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.endpoint = endpoint
        self.access_key_id = access_key_id
        self._secret = secret
        self.region_id = region_id
        self._client = client
        self._clock = clock
        self._nonce = nonce

    def __repr__(self) -> str:
        return f"AliyunRpc(endpoint={self.endpoint!r}, access_key_id={self.access_key_id!r})"

    def call(self, action: str, version: str, params: dict[str, str], timeout: float,
             receipt: str) -> Result:
        body = aliyun.signed(params, action=action, version=version,
                             access_key_id=self.access_key_id, secret=self._secret,
                             region_id=self.region_id, now=self._clock(), nonce=self._nonce())
        try:
            response = self._client.post(self.endpoint, data=body, timeout=timeout)
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        try:
            answer = response.json()
            code = str(answer.get("Code", ""))
        except (ValueError, AttributeError):
            outcome = status_outcome(response.status_code)
            outcome = Outcome.RETRY if outcome is Outcome.DELIVERED else outcome
            return Result(outcome, f"HTTP {response.status_code}, not a JSON answer: "
                                   f"{short(response.text, 120)}")
        message = short(str(answer.get("Message", "")), 200)
        if code == "OK":
            return Result(Outcome.DELIVERED, f"{receipt} {answer.get(receipt, '')}".strip())
        if code in RETRY_CODES or response.status_code >= 500:
            return Result(Outcome.RETRY, f"{code or 'HTTP ' + str(response.status_code)}: "
                                         f"{message}")
        return Result(Outcome.FAILED, f"{code or 'HTTP ' + str(response.status_code)}: "
                                      f"{message}")


class AliyunSms:
    name = "sms"

    def __init__(self, rpc: AliyunRpc, sign_name: str,
                 templates: dict[str, ProviderTemplate]) -> None:
        self.rpc = rpc
        self.sign_name = sign_name
        self.templates = templates

    def compose(self, message: Message, recipient: str) -> dict[str, Any]:
        return template_request(self.templates, message, "sms", "SMS",
                                ("TemplateCode", "TemplateParam"))

    def send(self, recipient: str, payload: dict[str, Any], notification_id: str,
             timeout: float) -> Result:
        params = {"PhoneNumbers": recipient, "SignName": self.sign_name,
                  "TemplateCode": str(payload["TemplateCode"]),
                  "TemplateParam": str(payload["TemplateParam"]), "OutId": notification_id}
        return self.rpc.call("SendSms", SMS_VERSION, params, timeout, "BizId")


class WebhookSms:
    """An SMS gateway that takes the rendered text as a signed JSON POST (see webhook.py):
    ``{"notification_id", "phone", "text", "language", "kind"}``."""

    name = "sms"

    def __init__(self, url: str, secret: str, client: httpx.Client,
                 clock: Clock = utc_now) -> None:
        self.url = url
        self._secret = secret
        self._client = client
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookSms(url={self.url!r})"

    def compose(self, message: Message, recipient: str) -> dict[str, Any]:
        return {"text": message.text, "language": message.language, "kind": message.kind}

    def send(self, recipient: str, payload: dict[str, Any], notification_id: str,
             timeout: float) -> Result:
        body = encode({"notification_id": notification_id, "phone": recipient, **payload})
        return post_signed(self._client, self.url, self._secret, body, notification_id,
                           self._clock(), timeout)
