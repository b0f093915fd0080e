"""Who hears what: rule checks, scope, levels, customer addresses, precedence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.notify.model import Event
from connectors.notify.rules import Context, Rule, RuleError, match

AT = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)
CTX = Context(account_id="A1", customer_id="C1", phone="13800000001", email="",
              wechat_openid="oABC", customer_language="en", site_id="S1",
              site_timezone="Europe/London")


def low(level: int) -> Event:
    return Event("alarm-1", "low_balance", AT, account_id="A1", level=level,
                 balance_fen=100, threshold_fen=1000)


def rule(rule_id: str, **kw: object) -> Rule:
    fields: dict[str, object] = {"scope": "account", "scope_id": "A1",
                                 "events": ("low_balance",), "channel": "sms",
                                 "recipient": "customer"}
    fields.update(kw)
    return Rule(rule_id=rule_id, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "message"), [
    ({"events": ()}, "events: name at least one"),
    ({"events": ("low_balance", "flood")}, "unknown flood"),
    ({"levels": (4,)}, "levels"),
    ({"channel": "fax"}, "channel 'fax'"),
    ({"channel": "voice", "events": ("low_balance",)}, "voice call is only for disconnect"),
    ({"channel": "webhook", "recipient": "customer"}, "webhook goes to an endpoint"),
    ({"channel": "sms", "recipient": "not-a-phone"}, "a phone number"),
    ({"channel": "email", "recipient": "nobody"}, "an e-mail address"),
    ({"language": "fr"}, "language 'fr'"),
    ({"timezone": "Mars/Olympus"}, "not an IANA time zone"),
    ({"quiet_hours": "late"}, "quiet hours"),
    ({"scope": "building"}, "scope 'building'"),
])
def test_rules_that_cannot_work_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        rule("r1", **kw)


def test_levels_choose_which_low_balance_alarms() -> None:
    rules = [rule("r1", levels=(2, 3))]
    assert match(low(1), CTX, rules).targets == []
    assert [t.recipient for t in match(low(2), CTX, rules).targets] == ["13800000001"]


def test_customer_addresses_language_and_zone() -> None:
    rules = [rule("r1"), rule("r2", channel="wechat"), rule("r3", channel="email"),
             rule("r4", channel="email", recipient="ops@example.com", language="zh",
                  timezone="Asia/Shanghai")]
    found = match(low(1), CTX, rules)
    assert [(t.channel, t.recipient, t.language, t.timezone) for t in found.targets] == [
        ("sms", "13800000001", "en", "Europe/London"),
        ("wechat", "oABC", "en", "Europe/London"),
        ("email", "ops@example.com", "zh", "Asia/Shanghai"),
    ]
    assert found.skipped == ["rule r3: customer C1 has no email for email (account A1)"]


def test_account_rules_win_over_site_rules_for_the_same_recipient() -> None:
    site = rule("a-site", scope="site", scope_id="S1", quiet_hours="22:00-07:00",
                language="zh")
    account = rule("z-account", language="en")
    found = match(low(1), CTX, [site, account])
    assert len(found.targets) == 1
    assert found.targets[0].rule_id == "z-account" and found.targets[0].quiet_hours is None


def test_scope_must_match_the_event() -> None:
    other_account = rule("r1", scope_id="A2")
    other_site = rule("r2", scope="site", scope_id="S2")
    disabled = rule("r3", enabled=False)
    assert match(low(1), CTX, [other_account, other_site, disabled]).targets == []
    no_site = Context(account_id="A1", phone="13800000001")
    site_rule = rule("r4", scope="site", scope_id="S1")
    assert match(low(1), no_site, [site_rule]).targets == []


def test_defaults_when_nothing_says() -> None:
    bare = Context(account_id="A1", phone="13800000001")
    target = match(low(1), bare, [rule("r1")], default_language="zh",
                   default_timezone="Asia/Shanghai").targets[0]
    assert (target.language, target.timezone) == ("zh", "Asia/Shanghai")


def test_meter_events_reach_site_rules() -> None:
    offline = Event("offline-1", "offline", AT, meter_id="M1")
    ctx = Context(account_id=None, meter_id="M1", site_id="S1")
    site_rule = rule("r1", scope="site", scope_id="S1", events=("offline",),
                     channel="webhook", recipient="ops")
    assert [t.recipient for t in match(offline, ctx, [site_rule]).targets] == ["ops"]


def test_an_unknown_site_zone_falls_back_to_the_default() -> None:
    odd = Context(account_id="A1", phone="13800000001", site_id="S1", site_timezone="Moon/Base")
    found = match(low(1), odd, [rule("r1")], default_timezone="Asia/Shanghai")
    assert found.targets[0].timezone == "Asia/Shanghai"
    assert found.skipped == ["rule r1: time zone 'Moon/Base' of site S1 is unknown; "
                             "Asia/Shanghai used"]
