"""Message texts in Chinese and English, and the variables they may use (pure).

A template is text with ``{name}`` placeholders and nothing else (no attribute access,
indexing or format specs: a template from a configuration file must not reach into
Python objects). Money is shown in yuan from integer fen through Decimal, two places.
Times are shown in the recipient's time zone.

Variables, always present: ``kind``, ``event`` (the kind's name in the language),
``account``, ``account_name``, ``customer``, ``place`` (room and site, with a leading
separator, empty when unknown), ``meter``, ``time``, ``timezone``, ``detail``. Present only
when the event has them: ``level`` (low_balance), ``balance`` and ``threshold`` (yuan).
A template using a variable the event lacks is refused for that event (a clear error, and
the event goes to the dead-letter topic); an unknown name is refused when the
configuration is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Formatter
from typing import Any
from zoneinfo import ZoneInfo

from connectors.notify.model import EVENT_KINDS, Event
from connectors.notify.rules import Context
from contracts.money import yuan_text

ALWAYS = ("kind", "event", "account", "account_name", "customer", "place", "meter", "time",
          "timezone", "detail")
OPTIONAL = ("level", "balance", "threshold")
KNOWN_VARIABLES = frozenset(ALWAYS + OPTIONAL)


class TemplateError(ValueError):
    """A template that cannot be rendered; the message names the template and the variable."""


@dataclass(frozen=True)
class Text:
    subject: str
    text: str


KIND_NAMES: dict[str, dict[str, str]] = {
    "zh": {"low_balance": "余额不足", "disconnect": "停止供应", "reconnect": "恢复供应",
           "disconnect_deferred": "停供暂缓", "disconnect_cancelled": "停供取消",
           "refused": "操作被拒绝", "notification_failed": "通知发送失败",
           "command_retry": "控制命令重发", "command_abandoned": "控制命令未执行",
           "offline": "表计离线", "online": "表计恢复在线", "unrated": "用量未计费",
           "meter_stopped": "表计故障", "bill_issued": "账单已出", "bill_overdue": "账单逾期",
           "payment_mismatch": "支付对账差异"},
    "en": {"low_balance": "Low balance", "disconnect": "Supply cut", "reconnect":
           "Supply restored", "disconnect_deferred": "Cut-off deferred",
           "disconnect_cancelled": "Cut-off cancelled", "refused": "Payment refused",
           "command_retry": "Command issued again",
           "command_abandoned": "Command not carried out",
           "notification_failed": "Notification failed", "offline": "Meter offline",
           "online": "Meter back online", "unrated": "Usage not billed",
           "meter_stopped": "Meter fault", "bill_issued": "Bill issued",
           "bill_overdue": "Bill overdue", "payment_mismatch": "Payment reconciliation"},
}

BUILT_IN: dict[str, dict[str, Text]] = {
    "zh": {
        "low_balance": Text(
            "【余额提醒】账户 {account} 余额不足（{level}级）",
            "尊敬的用户：您的账户 {account}{place} 当前余额 {balance} 元，已低于 {threshold} 元"
            "（{level}级提醒），请及时充值，以免停止供电供水。时间：{time}"),
        "disconnect": Text(
            "【停止供应】账户 {account} 已停止供电供水",
            "尊敬的用户：您的账户 {account}{place} 余额 {balance} 元，已达到停止供应条件，"
            "已于 {time} 停止供电供水。充值后将自动恢复。"),
        "reconnect": Text(
            "【恢复供应】账户 {account} 已恢复供电供水",
            "尊敬的用户：您的账户 {account}{place} 当前余额 {balance} 元，"
            "已于 {time} 恢复供电供水。"),
        "disconnect_deferred": Text(
            "【停供暂缓】账户 {account} 停止供应暂缓执行",
            "账户 {account}{place} 余额 {balance} 元，已达到停止供应条件，因保电时段暂缓执行"
            "（{detail}），请尽快充值。时间：{time}"),
        "disconnect_cancelled": Text(
            "【停供取消】账户 {account} 停止供应已取消",
            "账户 {account}{place} 待执行的停止供应已取消，当前余额 {balance} 元。时间：{time}"),
        "refused": Text(
            "【操作被拒绝】账户 {account} 的款项操作被拒绝",
            "账户 {account}{place} 的一笔款项操作被拒绝：{detail}。时间：{time}"),
        "command_retry": Text(
            "【控制命令重发】账户 {account} 的通断命令未被表计确认，已重发",
            "账户 {account}{place} 的通断命令未被表计确认，已安排重发：{detail}。时间：{time}"),
        "command_abandoned": Text(
            "【控制命令未执行】账户 {account} 的通断命令多次未被表计确认",
            "账户 {account}{place} 的通断命令多次未被表计确认，已停止重发，请人工处理："
            "{detail}。时间：{time}"),
        "notification_failed": Text(
            "【通知发送失败】账户 {account} 的一条通知未能送达",
            "一条通知未能送达：{detail}。账户 {account}{place}，时间：{time}"),
        "payment_mismatch": Text(
            "【支付对账差异】账户 {account} 的在线支付与支付平台账单不一致",
            "在线支付对账发现差异，请核对：{detail}。账户 {account}{place}，时间：{time}"),
        "offline": Text(
            "【表计离线】表计 {meter} 离线",
            "表计 {meter}{place} 自 {time} 起未上报数据，已离线。{detail}"),
        "online": Text(
            "【表计恢复在线】表计 {meter} 已恢复在线",
            "表计 {meter}{place} 已于 {time} 恢复在线。"),
        "unrated": Text(
            "【用量未计费】表计 {meter} 的用量未能计费",
            "表计 {meter}{place} 的用量未能计费：{detail}。时间：{time}"),
        "meter_stopped": Text(
            "【表计故障】表计 {meter} 读数停止变化",
            "表计 {meter}{place} 的读数自 {time} 起不再变化，可能已故障。{detail}"),
        "bill_issued": Text(
            "【账单通知】账户 {account} 的账单已出",
            "尊敬的用户：您的账户 {account}{place} 本期账单已出：{detail}。请按时缴费。"
            "时间：{time}"),
        "bill_overdue": Text(
            "【逾期提醒】账户 {account} 的账单已逾期",
            "尊敬的用户：您的账户 {account}{place} 有账单逾期未缴清：{detail}。请尽快缴费。"
            "时间：{time}"),
    },
    "en": {
        "low_balance": Text(
            "Low balance (level {level}) on account {account}",
            "Account {account}{place} has {balance} yuan left, at or below {threshold} yuan "
            "(level {level} alert). Please top up to keep electricity and water on. "
            "Time: {time}"),
        "disconnect": Text(
            "Supply cut on account {account}",
            "Account {account}{place} reached its cut-off balance ({balance} yuan); electricity "
            "and water were cut at {time}. Supply returns automatically after a top-up."),
        "reconnect": Text(
            "Supply restored on account {account}",
            "Account {account}{place} now has {balance} yuan; electricity and water were "
            "restored at {time}."),
        "disconnect_deferred": Text(
            "Cut-off deferred on account {account}",
            "Account {account}{place} reached its cut-off balance ({balance} yuan); the cut "
            "is deferred during a keep-supply period ({detail}). Please top up soon. "
            "Time: {time}"),
        "disconnect_cancelled": Text(
            "Cut-off cancelled on account {account}",
            "The pending cut-off of account {account}{place} was cancelled; the balance is "
            "{balance} yuan. Time: {time}"),
        "refused": Text(
            "Payment refused on account {account}",
            "A payment on account {account}{place} was refused: {detail}. Time: {time}"),
        "command_retry": Text(
            "Command to a meter of account {account} issued again",
            "A relay or valve command for account {account}{place} was not confirmed by the "
            "meter and is issued again: {detail}. Time: {time}"),
        "command_abandoned": Text(
            "Command to a meter of account {account} not carried out",
            "A relay or valve command for account {account}{place} was not confirmed after "
            "every attempt; it is not issued again, please see to it: {detail}. "
            "Time: {time}"),
        "notification_failed": Text(
            "A notification for account {account} could not be delivered",
            "A notification could not be delivered: {detail}. Account {account}{place}, "
            "time: {time}"),
        "payment_mismatch": Text(
            "Online payments of account {account} differ from the gateway's bill",
            "The daily check against the payment gateway's bill found a difference, please "
            "look into it: {detail}. Account {account}{place}, time: {time}"),
        "offline": Text(
            "Meter {meter} is offline",
            "Meter {meter}{place} has sent no reading since {time} and is offline. {detail}"),
        "online": Text(
            "Meter {meter} is back online",
            "Meter {meter}{place} is back online since {time}."),
        "unrated": Text(
            "Usage of meter {meter} was not billed",
            "The usage of meter {meter}{place} could not be billed: {detail}. Time: {time}"),
        "meter_stopped": Text(
            "Meter {meter} stopped counting",
            "The register of meter {meter}{place} has not changed since {time}; the meter "
            "may be faulty. {detail}"),
        "bill_issued": Text(
            "Bill issued for account {account}",
            "A bill for account {account}{place} was issued: {detail}. Please pay by the due "
            "date. Time: {time}"),
        "bill_overdue": Text(
            "Bill overdue on account {account}",
            "A bill of account {account}{place} is overdue and not fully paid: {detail}. "
            "Please pay as soon as possible. Time: {time}"),
    },
}


def fields(template: str, where: str) -> list[str]:
    """The placeholder names of ``template``; refuses anything but ``{name}``."""
    names: list[str] = []
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"{where}: {exc} in {template!r}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(f"{where}: only {{name}} placeholders are allowed, "
                                f"not {{{name}{'!' + conversion if conversion else ''}"
                                f"{':' + spec if spec else ''}}}")
        names.append(name)
    return names


def check(template: str, where: str) -> None:
    """Refuse a template naming a variable that no event has (at configuration time)."""
    for name in fields(template, where):
        if name not in KNOWN_VARIABLES:
            raise TemplateError(f"{where}: unknown variable {{{name}}} "
                                f"(known: {', '.join(sorted(KNOWN_VARIABLES))})")


def render(template: str, variables: dict[str, str], where: str) -> str:
    """Fill ``template``; a variable this event does not have is a TemplateError."""
    for name in fields(template, where):
        if name not in variables:
            if name in KNOWN_VARIABLES:
                raise TemplateError(f"{where}: variable {{{name}}} has no value for a "
                                    f"{variables.get('kind', '?')} event")
            raise TemplateError(f"{where}: unknown variable {{{name}}}")
    return template.format_map(variables)


def _place(context: Context, language: str) -> str:
    room = context.room_name or context.room_id or ""
    site = context.site_name or context.site_id or ""
    parts = [p for p in (site, room) if p]
    if not parts:
        return ""
    return f"（{' '.join(parts)}）" if language == "zh" else f" ({', '.join(parts)})"


def variables(event: Event, context: Context, language: str, timezone: str) -> dict[str, str]:
    """Every variable the event has, as text in ``language`` and ``timezone``."""
    local = event.at.astimezone(ZoneInfo(timezone))
    values = {
        "kind": event.kind,
        "event": KIND_NAMES[language].get(event.kind, event.kind),
        "account": event.account_id or context.account_id or "",
        "account_name": context.account_name,
        "customer": context.customer_name,
        "place": _place(context, language),
        "meter": event.meter_id or context.meter_id or "",
        "time": f"{local:%Y-%m-%d %H:%M}",
        "timezone": timezone,
        "detail": event.detail,
    }
    if event.level is not None:
        values["level"] = str(event.level)
    if event.balance_fen is not None:
        values["balance"] = yuan_text(event.balance_fen)
    if event.threshold_fen is not None:
        values["threshold"] = yuan_text(event.threshold_fen)
    return values


class Templates:
    """The built-in texts, with overrides from the configuration (checked on load)."""

    def __init__(self, overrides: dict[str, dict[str, Text]] | None = None) -> None:
        self.texts = {lang: dict(kinds) for lang, kinds in BUILT_IN.items()}
        for lang, kinds in (overrides or {}).items():
            if lang not in self.texts:
                raise TemplateError(f"templates.{lang}: language must be zh or en")
            for kind, text in kinds.items():
                if kind not in EVENT_KINDS:
                    raise TemplateError(f"templates.{lang}.{kind}: unknown event kind")
                check(text.subject, f"templates.{lang}.{kind}.subject")
                check(text.text, f"templates.{lang}.{kind}.text")
                self.texts[lang][kind] = text

    def message(self, event: Event, context: Context, language: str, timezone: str
                ) -> dict[str, Any]:
        """Subject, text and variables of ``event`` for one recipient."""
        values = variables(event, context, language, timezone)
        text = self.texts[language].get(event.kind)
        if text is None:
            raise TemplateError(f"templates.{language}.{event.kind}: no template for this kind")
        where = f"templates.{language}.{event.kind}"
        return {"subject": render(text.subject, values, f"{where}.subject"),
                "text": render(text.text, values, f"{where}.text"),
                "variables": values}
