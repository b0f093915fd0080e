"""The printable page of one bill (HTML, Jinja2 with autoescape; fonts and styles inline,
nothing fetched from elsewhere). Texts in Chinese or English."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from contracts.money import yuan_text

TEXTS = {
    "zh": {"title": "账单", "bill": "账单号", "account": "账户", "period": "账期",
           "state": "状态", "due_date": "缴费截止日", "item": "项目", "units": "用量",
           "amount": "金额（元）", "charges": "本期费用", "previous_arrears": "上期欠费",
           "payments": "本期已收款", "paid": "已结清本账单", "amount_due": "应缴金额",
           "print": "打印"},
    "en": {"title": "Bill", "bill": "Bill", "account": "Account", "period": "Period",
           "state": "State", "due_date": "Due by", "item": "Item", "units": "Units",
           "amount": "Amount (yuan)", "charges": "Charges this period",
           "previous_arrears": "Previous arrears", "payments": "Payments received",
           "paid": "Paid against this bill", "amount_due": "Amount due", "print": "Print"},
}
_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["html"]))


def render(bill: dict[str, Any], lines: list[dict[str, Any]], account_name: str,
           lang: str) -> str:
    """The bill as one self-contained HTML page."""
    closing, opening = int(bill["closing_fen"]), int(bill["opening_fen"])
    return _ENV.get_template("bill.html").render(
        lang=lang, t=TEXTS[lang], bill=bill, account_name=account_name,
        period_last=bill["period_end"] - timedelta(days=1),
        lines=[{"label": ln["label"], "units": None if ln["units"] is None
                else f"{ln['units']:f}".rstrip("0").rstrip("."),
                "amount": yuan_text(int(ln["amount_fen"]))} for ln in lines],
        charges=yuan_text(int(bill["charges_fen"])),
        previous_arrears=yuan_text(max(-opening, 0)),
        payments=yuan_text(int(bill["payments_fen"])),
        paid=yuan_text(int(bill["paid_fen"])), amount_due=yuan_text(max(-closing, 0)))
