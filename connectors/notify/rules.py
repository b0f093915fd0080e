"""Who hears what (pure): rules per site and per account, matched against one event.

A rule names events (and, for ``low_balance``, the levels 1-3 it wants), one channel and
one recipient: ``customer`` (the account's customer: phone for SMS and voice, e-mail,
WeChat openid) or an address (a phone number, an e-mail address, an openid, or the name of
a webhook endpoint in the notifier's configuration). Language: the rule's, else the
customer's, else the default; time zone: the rule's, else the site's, else the default.
Account rules are more specific than site rules: when both reach the same recipient over
the same channel, the account rule's language and quiet hours apply, and one message goes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.notify.model import EVENT_KINDS, Event
from connectors.notify.policy import QuietHours

CHANNELS = ("sms", "voice", "email", "wechat", "webhook")
SCOPES = ("account", "site")  # most specific first
LANGUAGES = ("zh", "en")
CUSTOMER = "customer"
#: A voice call is for what cannot wait: the supply was cut (also at the overdraft limit).
VOICE_EVENTS = ("disconnect",)

_RULE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_ADDRESS = {
    "sms": (re.compile(r"^\+?[0-9]{5,20}$"), "a phone number (digits, optional +)"),
    "voice": (re.compile(r"^\+?[0-9]{5,20}$"), "a phone number (digits, optional +)"),
    "email": (re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$"), "an e-mail address"),
    "wechat": (re.compile(r"^[A-Za-z0-9_-]{1,64}$"), "a WeChat openid"),
    "webhook": (re.compile(r"^[A-Za-z0-9._-]{1,64}$"), "a webhook endpoint name"),
}
_CUSTOMER_FIELD = {"sms": "phone", "voice": "phone", "email": "email", "wechat": "wechat_openid"}


class RuleError(ValueError):
    """A rule that cannot be stored; the message names the field."""


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Rule:
    rule_id: str
    scope: str
    scope_id: str
    events: tuple[str, ...]
    channel: str
    recipient: str
    levels: tuple[int, ...] = (1, 2, 3)
    language: str | None = None
    timezone: str | None = None
    quiet_hours: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        check(self)


def check(rule: Rule) -> None:
    """Refuse a rule that could never work, naming the field."""
    if not _RULE_ID.match(rule.rule_id):
        raise RuleError(f"rule_id {rule.rule_id!r}: 1-64 of A-Z a-z 0-9 . _ : -")
    if rule.scope not in SCOPES:
        raise RuleError(f"scope {rule.scope!r}: one of {', '.join(SCOPES)}")
    if not _RULE_ID.match(rule.scope_id):
        raise RuleError(f"scope_id {rule.scope_id!r}: 1-64 of A-Z a-z 0-9 . _ : -")
    if not rule.events:
        raise RuleError("events: name at least one")
    unknown = [e for e in rule.events if e not in EVENT_KINDS]
    if unknown:
        raise RuleError(f"events: unknown {', '.join(unknown)} (known: {', '.join(EVENT_KINDS)})")
    if not rule.levels or any(level not in (1, 2, 3) for level in rule.levels):
        raise RuleError(f"levels {list(rule.levels)}: a non-empty choice of 1, 2, 3")
    if rule.channel not in CHANNELS:
        raise RuleError(f"channel {rule.channel!r}: one of {', '.join(CHANNELS)}")
    if rule.channel == "voice" and any(e not in VOICE_EVENTS for e in rule.events):
        raise RuleError(f"events: a voice call is only for {', '.join(VOICE_EVENTS)}")
    if rule.recipient == CUSTOMER:
        if rule.channel == "webhook":
            raise RuleError("recipient: a webhook goes to an endpoint name, not the customer")
    else:
        pattern, what = _ADDRESS[rule.channel]
        if not pattern.match(rule.recipient):
            raise RuleError(f"recipient {rule.recipient!r}: 'customer' or {what}")
    if rule.language is not None and rule.language not in LANGUAGES:
        raise RuleError(f"language {rule.language!r}: zh or en")
    if rule.timezone is not None and not valid_zone(rule.timezone):
        raise RuleError(f"timezone {rule.timezone!r}: not an IANA time zone")
    if rule.quiet_hours is not None:
        try:
            QuietHours.parse(rule.quiet_hours)
        except ValueError as exc:
            raise RuleError(str(exc)) from None


@dataclass(frozen=True)
class Context:
    """What the database knows of the event's account, customer, room and site."""

    account_id: str | None = None
    account_name: str = ""
    meter_id: str | None = None
    customer_id: str | None = None
    customer_name: str = ""
    phone: str = ""
    email: str = ""
    wechat_openid: str = ""
    customer_language: str | None = None
    room_id: str | None = None
    room_name: str = ""
    site_id: str | None = None
    site_name: str = ""
    site_timezone: str | None = None


@dataclass(frozen=True)
class Target:
    """One recipient over one channel, with how to speak to them."""

    channel: str
    recipient: str
    language: str
    timezone: str
    quiet_hours: str | None
    rule_id: str


@dataclass
class Matched:
    targets: list[Target] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what a rule could not do, and why


def _applies(rule: Rule, event: Event, context: Context) -> bool:
    if not rule.enabled or event.kind not in rule.events:
        return False
    if event.kind == "low_balance" and event.level not in rule.levels:
        return False
    scope_id = context.account_id if rule.scope == "account" else context.site_id
    return scope_id is not None and rule.scope_id == scope_id


def match(event: Event, context: Context, rules: list[Rule], *, default_language: str = "zh",
          default_timezone: str = "Asia/Shanghai") -> Matched:
    """The targets of ``event``: one per (channel, recipient), account rules first."""
    out = Matched()
    seen: set[tuple[str, str]] = set()
    ordered = sorted(rules, key=lambda r: (SCOPES.index(r.scope), r.rule_id))
    for rule in ordered:
        if not _applies(rule, event, context):
            continue
        language = rule.language
        if rule.recipient == CUSTOMER:
            name = _CUSTOMER_FIELD[rule.channel]
            address = getattr(context, name)
            if not address:
                who = f"customer {context.customer_id}" if context.customer_id else "no customer"
                out.skipped.append(f"rule {rule.rule_id}: {who} has no {name} for "
                                   f"{rule.channel} (account {context.account_id})")
                continue
            language = language or context.customer_language
        else:
            address = rule.recipient
        key = (rule.channel, address)
        if key in seen:
            continue
        seen.add(key)
        zone = rule.timezone or context.site_timezone or default_timezone
        if not valid_zone(zone):
            out.skipped.append(f"rule {rule.rule_id}: time zone {zone!r} of site "
                               f"{context.site_id} is unknown; {default_timezone} used")
            zone = default_timezone
        out.targets.append(Target(
            channel=rule.channel, recipient=address,
            language=language or default_language, timezone=zone,
            quiet_hours=rule.quiet_hours, rule_id=rule.rule_id))
    return out
