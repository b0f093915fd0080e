"""WeChat template messages: token cached until near expiry, refreshed once on 40001/42001."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectors.notify.channels import Message
from connectors.notify.config import WechatTemplate
from connectors.notify.policy import Outcome
from connectors.notify.templates import TemplateError
from connectors.notify.wechat import TokenCache, Wechat


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class FakeWechat:
    """Scripted answers; records what was asked."""

    def __init__(self, send_codes: list[int] | None = None, token_answer: dict | None = None
                 ) -> None:
        self.send_codes = send_codes or []
        self.token_answer = token_answer
        self.tokens = 0
        self.sent: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(urlsplit(str(request.url)).query)
        if request.url.path == "/cgi-bin/token":
            assert query == {"grant_type": ["client_credential"], "appid": ["wx1"],
                             "secret": ["s3cret"]}
            self.tokens += 1
            return httpx.Response(200, json=self.token_answer or
                                  {"access_token": f"T{self.tokens}", "expires_in": 7200})
        assert request.url.path == "/cgi-bin/message/template/send"
        self.sent.append((query["access_token"][0], json.loads(request.content)))
        code = self.send_codes.pop(0) if self.send_codes else 0
        return httpx.Response(200, json={"errcode": code, "errmsg": "x", "msgid": 42})


def channel(fake: FakeWechat, clock: Clock) -> Wechat:
    templates = {"low_balance": WechatTemplate(template_id="TPL", url="https://m.example/a",
                                               data={"first": "{subject}",
                                                     "keyword1": "{balance}"})}
    return Wechat("https://api.weixin.invalid/", "wx1", "s3cret", templates,
                  httpx.Client(transport=httpx.MockTransport(fake)), clock)


def message() -> Message:
    return Message("n1", "low_balance", "zh", "Low", "text", {"balance": "19.90"}, {})


def test_token_is_cached_until_shortly_before_expiry() -> None:
    fake, clock = FakeWechat(), Clock()
    wechat = channel(fake, clock)
    payload = wechat.compose(message(), "oA")
    assert payload == {"template_id": "TPL", "url": "https://m.example/a",
                       "data": {"first": {"value": "Low"}, "keyword1": {"value": "19.90"}}}
    assert wechat.send("oA", payload, "n1", 5).outcome is Outcome.DELIVERED
    clock.now += timedelta(seconds=6899)  # 7200 s less a 300 s margin, minus one
    assert wechat.send("oB", payload, "n2", 5).outcome is Outcome.DELIVERED
    assert fake.tokens == 1
    clock.now += timedelta(seconds=1)
    assert wechat.send("oC", payload, "n3", 5).outcome is Outcome.DELIVERED
    assert fake.tokens == 2
    assert [(t, body["touser"]) for t, body in fake.sent] == [("T1", "oA"), ("T1", "oB"),
                                                              ("T2", "oC")]


@pytest.mark.parametrize("code", [40001, 42001, 40014])
def test_an_invalid_token_is_refreshed_once(code: int) -> None:
    fake, clock = FakeWechat(send_codes=[code]), Clock()
    wechat = channel(fake, clock)
    result = wechat.send("oA", wechat.compose(message(), "oA"), "n1", 5)
    assert result.outcome is Outcome.DELIVERED
    assert [t for t, _ in fake.sent] == ["T1", "T2"]


def test_refresh_only_once_then_retry_later() -> None:
    fake, clock = FakeWechat(send_codes=[40001, 40001]), Clock()
    wechat = channel(fake, clock)
    assert wechat.send("oA", wechat.compose(message(), "oA"), "n1", 5).outcome is Outcome.RETRY
    assert fake.tokens == 2 and len(fake.sent) == 2


def test_errcodes() -> None:
    for code, outcome in ((-1, Outcome.RETRY), (45009, Outcome.RETRY), (43004, Outcome.FAILED),
                          (40003, Outcome.FAILED)):
        fake = FakeWechat(send_codes=[code])
        wechat = channel(fake, Clock())
        assert wechat.send("oA", wechat.compose(message(), "oA"), "n", 5).outcome is outcome


def test_token_refused() -> None:
    fake = FakeWechat(token_answer={"errcode": 40125, "errmsg": "invalid appsecret"})
    wechat = channel(fake, Clock())
    result = wechat.send("oA", wechat.compose(message(), "oA"), "n", 5)
    assert result.outcome is Outcome.FAILED and "40125" in result.detail
    assert "s3cret" not in result.detail and fake.sent == []


def test_no_template_for_the_kind() -> None:
    wechat = channel(FakeWechat(), Clock())
    other = Message("n1", "offline", "zh", "s", "t", {}, {})
    with pytest.raises(TemplateError, match=r"channels\.wechat\.templates\.offline"):
        wechat.compose(other, "oA")


def test_token_cache_margin() -> None:
    cache, now = TokenCache(), datetime(2026, 7, 1, tzinfo=UTC)
    cache.put("t", 100, now)  # a tenth of its life: 10 s margin
    assert cache.get(now + timedelta(seconds=89)) == "t"
    assert cache.get(now + timedelta(seconds=90)) is None
    cache.drop("other")
    assert cache.get(now) == "t"
    cache.drop("t")
    assert cache.get(now) is None
