"""WeChat official account template messages, with the access token cached.

``GET /cgi-bin/token?grant_type=client_credential&appid=..&secret=..`` answers
``{"access_token", "expires_in"}`` (seconds, 7200 today). The token is kept until a margin
before it expires (a tenth of its life, at most 5 minutes) and shared by the delivery
threads; ``POST /cgi-bin/message/template/send?access_token=..`` with ``{"touser",
"template_id", "url", "data": {name: {"value"}}}`` sends. When WeChat says the token is
invalid or expired (errcode 40001, 42001, 40014: another process may have refreshed it),
the token is fetched again once and the message sent again once. errcode -1 (system busy)
and 45009/45011 (frequency limits) are tried again later; any other errcode fails for good.
The secret travels in the token request's query: nothing here logs a URL, and the CLI
silences the HTTP client's own request log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from connectors.notify.channels import Message, Result, short, transport_failure
from connectors.notify.config import WechatTemplate
from connectors.notify.policy import Outcome
from connectors.notify.templates import TemplateError, render
from contracts.clock import Clock, utc_now

TOKEN_ERRORS = frozenset({40001, 42001, 40014})
RETRY_ERRORS = frozenset({-1, 45009, 45011})


@dataclass
class TokenCache:
    """One access token and when to stop using it."""

    token: str | None = None
    use_until: datetime | None = None

    def get(self, now: datetime) -> str | None:
        if self.token is None or self.use_until is None or now >= self.use_until:
            return None
        return self.token

    def put(self, token: str, expires_in_s: int, now: datetime) -> None:
        margin = min(300, expires_in_s // 10)
        self.token = token
        self.use_until = now + timedelta(seconds=max(0, expires_in_s - margin))

    def drop(self, token: str) -> None:
        if self.token == token:
            self.token = self.use_until = None


class _Stop(Exception):
    def __init__(self, result: Result) -> None:
        self.result = result


class Wechat:
    name = "wechat"

    def __init__(self, base_url: str, app_id: str, secret: str,
                 templates: dict[str, WechatTemplate], client: httpx.Client,
                 clock: Clock = utc_now) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._secret = secret
        self.templates = templates
        self._client = client
        self._clock = clock
        self.cache = TokenCache()
        self._lock = threading.Lock()
        self.token_fetches = 0

    def __repr__(self) -> str:
        return f"Wechat(base_url={self.base_url!r}, app_id={self.app_id!r})"

    def compose(self, message: Message, recipient: str) -> dict[str, Any]:
        where = f"channels.wechat.templates.{message.kind}"
        template = self.templates.get(message.kind)
        if template is None:
            raise TemplateError(f"{where}: no WeChat template for {message.kind}")
        values = {**message.variables, "subject": message.subject, "text": message.text}
        data = {name: {"value": render(text, values, f"{where}.data.{name}")}
                for name, text in template.data.items()}
        body: dict[str, Any] = {"template_id": template.template_id, "data": data}
        if template.url:
            body["url"] = template.url
        return body

    def _fetch(self, timeout: float) -> str:
        self.token_fetches += 1
        try:
            response = self._client.get(
                f"{self.base_url}/cgi-bin/token", timeout=timeout,
                params={"grant_type": "client_credential", "appid": self.app_id,
                        "secret": self._secret})
            answer = response.json()
        except httpx.HTTPError as exc:
            raise _Stop(transport_failure(exc)) from None
        except ValueError:
            raise _Stop(Result(Outcome.RETRY, f"token: HTTP {response.status_code}, "
                                              "not a JSON answer")) from None
        token = answer.get("access_token")
        if isinstance(token, str) and token:
            expires = answer.get("expires_in", 7200)
            self.cache.put(token, int(expires) if isinstance(expires, int) else 7200,
                           self._clock())
            return token
        code = answer.get("errcode")
        outcome = Outcome.RETRY if code in RETRY_ERRORS or response.status_code >= 500 \
            else Outcome.FAILED
        raise _Stop(Result(outcome, f"token refused: errcode {code}: "
                                    f"{short(str(answer.get('errmsg', '')), 120)}"))

    def _token(self, timeout: float, stale: str | None = None) -> str:
        with self._lock:
            if stale is not None:
                self.cache.drop(stale)
            token = self.cache.get(self._clock())
            return token if token is not None else self._fetch(timeout)

    def _post(self, token: str, body: dict[str, Any], timeout: float) -> tuple[int | None, str]:
        response = self._client.post(f"{self.base_url}/cgi-bin/message/template/send",
                                     params={"access_token": token}, json=body,
                                     timeout=timeout)
        if response.status_code >= 500:
            return None, f"HTTP {response.status_code}"
        answer = response.json()
        code = answer.get("errcode", 0)
        return (code if isinstance(code, int) else -1,
                f"errcode {code}: {short(str(answer.get('errmsg', '')), 120)}"
                if code else f"msgid {answer.get('msgid', '')}")

    def send(self, recipient: str, payload: dict[str, Any], notification_id: str,
             timeout: float) -> Result:
        body = {"touser": recipient, **payload}
        try:
            token = self._token(timeout)
            code, detail = self._post(token, body, timeout)
            if code in TOKEN_ERRORS:  # refreshed elsewhere or expired early: once more
                token = self._token(timeout, stale=token)
                code, detail = self._post(token, body, timeout)
        except _Stop as stop:
            return stop.result
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        except ValueError:
            return Result(Outcome.RETRY, "not a JSON answer")
        if code == 0:
            return Result(Outcome.DELIVERED, detail)
        if code is None or code in RETRY_ERRORS or code in TOKEN_ERRORS:
            return Result(Outcome.RETRY, detail)
        return Result(Outcome.FAILED, detail)
