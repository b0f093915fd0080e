"""zh/en texts: every kind renders, money in yuan from fen, variables checked and named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.notify.model import EVENT_KINDS, Event
from connectors.notify.rules import Context
from connectors.notify.templates import (
    BUILT_IN,
    KIND_NAMES,
    TemplateError,
    Templates,
    Text,
    check,
    render,
    variables,
)

AT = datetime(2026, 7, 1, 18, 5, tzinfo=UTC)
CTX = Context(account_id="A1", customer_name="Li", room_name="101", site_name="Sunny Court")


def full(kind: str) -> Event:
    return Event(f"{kind}-1", kind, AT, account_id="A1", meter_id="M1",
                 level=2 if kind == "low_balance" else None, balance_fen=1990,
                 threshold_fen=2000, detail="why")


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_every_kind_has_both_languages(kind: str, language: str) -> None:
    message = Templates().message(full(kind), CTX, language, "Asia/Shanghai")
    assert message["subject"] and message["text"]
    assert "{" not in message["subject"] + message["text"]
    assert kind in KIND_NAMES[language]


def test_low_balance_text_in_both_languages() -> None:
    zh = Templates().message(full("low_balance"), CTX, "zh", "Asia/Shanghai")
    assert zh["subject"] == "【余额提醒】账户 A1 余额不足（2级）"
    assert "当前余额 19.90 元，已低于 20.00 元" in zh["text"]
    assert "（Sunny Court 101）" in zh["text"] and "2026-07-02 02:05" in zh["text"]
    en = Templates().message(full("low_balance"), CTX, "en", "Europe/London")
    assert en["subject"] == "Low balance (level 2) on account A1"
    assert "A1 (Sunny Court, 101) has 19.90 yuan left" in en["text"]
    assert "Time: 2026-07-01 19:05" in en["text"]  # London summer time


@given(st.integers(-10**12, 10**12))
def test_money_is_exact_yuan_from_fen(fen: int) -> None:
    event = Event("a", "disconnect", AT, account_id="A1", balance_fen=fen)
    shown = variables(event, Context(), "en", "UTC")["balance"]
    whole, _, cents = shown.lstrip("-").partition(".")
    assert len(cents) == 2
    assert int(whole) * 100 + int(cents) == abs(fen)
    assert shown.startswith("-") == (fen < 0)


def test_optional_variables_only_when_the_event_has_them() -> None:
    refused = Event("r", "refused", AT, account_id="A1", detail="insufficient_balance")
    values = variables(refused, Context(), "en", "UTC")
    assert "balance" not in values and "level" not in values and "threshold" not in values
    with pytest.raises(TemplateError, match=r"x: variable \{balance\} has no value for a "
                                            r"refused event"):
        render("left: {balance}", values, "x")


def test_templates_allow_plain_placeholders_only() -> None:
    values = {"kind": "offline", "meter": "M1"}
    assert render("{meter} {{literal}}", values, "t") == "M1 {literal}"
    for bad in ("{meter.__class__}", "{meter!r}", "{meter:>10}", "{0}", "{meter"):
        with pytest.raises(TemplateError, match="t:"):
            render(bad, values, "t")


def test_unknown_variables_are_refused_when_configured() -> None:
    with pytest.raises(TemplateError, match=r"templates.en.offline.text: unknown variable "
                                            r"\{bal\}"):
        Templates({"en": {"offline": Text("s", "left {bal}")}})
    check("{balance} {time}", "ok")
    with pytest.raises(TemplateError, match="unknown event kind"):
        Templates({"en": {"flood": Text("s", "t")}})


def test_overrides_replace_one_text() -> None:
    texts = Templates({"en": {"offline": Text("Down: {meter}", "{meter} down at {time}")}})
    message = texts.message(full("offline"), CTX, "en", "UTC")
    assert message["subject"] == "Down: M1"
    assert texts.texts["zh"]["offline"] == BUILT_IN["zh"]["offline"]


def test_bill_notices_name_the_bill_and_the_amount_due_in_both_languages() -> None:
    detail = "bill B20260501-O1 for 2026-05-01 to 2026-06-01: 2430.12 yuan due by 2026-06-11"
    event = Event("bill_overdue-1", "bill_overdue", AT, account_id="A1", balance_fen=-243012,
                  detail=detail)
    zh = Templates().message(event, CTX, "zh", "Asia/Shanghai")
    assert zh["subject"] == "【逾期提醒】账户 A1 的账单已逾期"
    assert detail in zh["text"] and "（Sunny Court 101）" in zh["text"]
    issued = Event("bill_issued-1", "bill_issued", AT, account_id="A1", detail=detail)
    en = Templates().message(issued, CTX, "en", "UTC")
    assert en["subject"] == "Bill issued for account A1"
    assert f"was issued: {detail}. Please pay by the due date." in en["text"]
