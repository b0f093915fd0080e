"""Voice calls: Alibaba Cloud ``SingleCallByTts`` (Dyvms RPC API 2017-05-25).

A text-to-speech template registered with the provider (``TtsCode``) is read out to
``CalledNumber`` with its variables (``TtsParam``, JSON), shown as ``CalledShowNumber``.
Rules allow voice for the events that cannot wait (``rules.VOICE_EVENTS``: the supply was
cut, also when an overdraft limit was reached). Signing and answers as for SMS.
"""

from __future__ import annotations

from typing import Any

from connectors.notify.channels import Message, Result
from connectors.notify.config import ProviderTemplate
from connectors.notify.sms import AliyunRpc, template_request

VOICE_VERSION = "2017-05-25"


class AliyunVoice:
    name = "voice"

    def __init__(self, rpc: AliyunRpc, called_show_number: str,
                 templates: dict[str, ProviderTemplate]) -> None:
        self.rpc = rpc
        self.called_show_number = called_show_number
        self.templates = templates

    def compose(self, message: Message, recipient: str) -> dict[str, Any]:
        return template_request(self.templates, message, "voice", "TTS",
                                ("TtsCode", "TtsParam"))

    def send(self, recipient: str, payload: dict[str, Any], notification_id: str,
             timeout: float) -> Result:
        params = {"CalledNumber": recipient, "TtsCode": str(payload["TtsCode"]),
                  "TtsParam": str(payload["TtsParam"]), "OutId": notification_id}
        if self.called_show_number:
            params["CalledShowNumber"] = self.called_show_number
        return self.rpc.call("SingleCallByTts", VOICE_VERSION, params, timeout, "CallId")
