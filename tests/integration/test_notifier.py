"""``meterflow notifier`` as a process on the test stack, talking to real servers on loopback.

Alarms are made by the billing core and published to Kafka as the worker does; the stand-in
gateways (notify_support.py) check signatures, parameters and tokens on their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from connectors.notify.ids import meta_alarm_id, notification_id
from connectors.notify.store import list_notifications
from connectors.publisher import make_producer
from contracts.dead_letter import DeadLetter
from contracts.messages import as_dict
from contracts.topics import ALARMS, DEAD_LETTERS, METER_EVENTS
from meterflow.settings import Settings
from meterflow.stack.process import terminate
from meterflow.subcommands.notify import notify_app
from pipeline import payloads
from tests.integration.conftest import REPO, wait_for
from tests.integration.notify_support import (
    HEALTH_PORT,
    Gateways,
    MailBox,
    config_yaml,
    http_gateways,
    make_place,
    notifier_env,
    smtp_server,
    wallet_alarms,
)

from .conftest import ApiSession

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture(scope="module")
def gateways() -> Iterator[Gateways]:
    server, found = http_gateways()
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MailBox, Path]]:
    controller, box, cert = smtp_server(tmp_path_factory.mktemp("smtp"))
    yield box, cert
    controller.stop()


def start_notifier(stack: Settings, config: Path, log: Path, group: str,
                   health: bool = True) -> subprocess.Popen[bytes]:
    env = notifier_env(stack)
    if not health:
        env["METERFLOW_HEALTH_PORT"] = "0"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meterflow.cli", "notifier", "--config", str(config),
             "--group", group], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=REPO)
    try:
        wait_for(lambda: b"notifier: channels" in log.read_bytes() or proc.poll() is not None,
                 60, "the notifier to start")
        assert proc.poll() is None, log.read_text()
    except BaseException:
        terminate(proc.pid, grace_s=5)
        raise
    return proc


def health() -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{HEALTH_PORT}/health", timeout=5) as r:
        body: dict[str, Any] = json.loads(r.read())
        return body


@pytest.fixture(scope="module")
def notifier(stack: Settings, gateways: Gateways, mailbox: tuple[MailBox, Path],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("notifier")
    config = folder / "notify.yaml"
    config.write_text(config_yaml(mailbox[1]))
    log = folder / "notifier.log"
    group = f"notifier-test-{uuid.uuid4().hex[:8]}"
    proc = start_notifier(stack, config, log, group)
    wait_for(lambda: _healthy(), 30, "the notifier's health endpoint")
    try:
        yield {"config": config, "log": log, "group": group, "folder": folder}
    finally:
        terminate(proc.pid, grace_s=20)
        proc.wait()
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))


def _healthy() -> bool:
    try:
        return health()["status"] == "ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def producer(stack: Settings) -> Iterator[Any]:
    made = make_producer(stack.bootstrap_servers)
    yield made
    made.close()


def publish(producer: Any, topic: str, key: str, payload: dict[str, Any] | bytes) -> None:
    value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    producer.send(topic, key=key.encode(), value=value).get(30)


def rule(stack: Settings, *args: str) -> str:
    result = runner.invoke(notify_app, ["rule", "add", *args], obj=stack)
    assert result.exit_code == 0, result.output
    return result.output.split()[0]


def rows(db: psycopg.Connection, account_id: str) -> list[dict[str, Any]]:
    return list_notifications(db, account_id=account_id, limit=1000)


def settled(db: psycopg.Connection, account_id: str, count: int) -> list[dict[str, Any]]:
    """Wait until the account has ``count`` notifications, none of them open."""
    def probe() -> list[dict[str, Any]] | None:
        found = rows(db, account_id)
        if len(found) == count and all(n["status"] in ("delivered", "failed") for n in found):
            return found
        return None
    result: list[dict[str, Any]] = wait_for(probe, 60, f"{count} settled notifications")
    return result


def caught_up(stack: Settings, group: str) -> bool:
    """No record of either topic lies after the group's committed offsets. (Only records
    count: a partition written in Kafka transactions ends with a commit marker, which
    takes an offset no consumer ever commits past.)"""
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap_servers, group_id=group,
                             enable_auto_commit=False, isolation_level="read_committed")
    try:
        parts = [TopicPartition(t, p) for t in (ALARMS, METER_EVENTS)
                 for p in consumer.partitions_for_topic(t) or ()]
        ends = consumer.end_offsets(parts)
        behind = [tp for tp in parts if (consumer.committed(tp) or 0) < ends[tp]]
        if not behind:
            return True
        consumer.assign(behind)
        for tp in behind:
            consumer.seek(tp, consumer.committed(tp) or 0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(consumer.poll(timeout_ms=200).values()):
                return False  # a record the group has not committed yet
            if all(consumer.position(tp) >= ends[tp] for tp in behind):
                return True
        return False
    finally:
        consumer.close()


def read_topic(stack: Settings, topic: str) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap_servers, group_id=None,
                             enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        records: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def tag() -> str:
    return uuid.uuid4().hex[:8]


# -- the acceptance scenario -----------------------------------------------------------------

def test_three_thresholds_then_zero_once_each_in_order_even_when_redelivered(
        stack: Settings, db: psycopg.Connection, notifier: dict[str, Any],
        gateways: Gateways, mailbox: tuple[MailBox, Path], producer: Any) -> None:
    t = tag()
    phone, email, openid = f"1390000{int(t, 16) % 10000:04d}", f"li.{t}@example.com", f"o-{t}"
    place = make_place(db, t, phone=phone, email=email, openid=openid, language="en")
    a = place.account_id
    rule(stack, "--scope", "account", "--id", a, "--events", "low_balance,disconnect",
         "--channel", "sms", "--to", "customer")
    rule(stack, "--scope", "account", "--id", a, "--events", "low_balance,disconnect",
         "--channel", "email", "--to", "customer")
    rule(stack, "--scope", "account", "--id", a, "--events", "low_balance", "--channel",
         "wechat", "--to", "customer", "--levels", "2,3")
    rule(stack, "--scope", "account", "--id", a, "--events", "disconnect", "--channel",
         "voice", "--to", "customer")
    rule(stack, "--scope", "site", "--id", place.site_id, "--events", "disconnect",
         "--channel", "webhook", "--to", "ops", "--language", "zh")

    alarms = wallet_alarms(a, ["15", "30", "10", "5"])
    assert [(x["kind"], x["level"], x["balance_fen"]) for x in alarms] == [
        ("low_balance", 1, 4500), ("low_balance", 2, 1500), ("low_balance", 3, 500),
        ("disconnect", None, 0)]
    for alarm in alarms:
        publish(producer, ALARMS, a, alarm)

    # 4 SMS + 4 e-mails + 2 WeChat (levels 2 and 3) + 1 voice call + 1 webhook
    found = settled(db, a, 12)
    assert {n["status"] for n in found} == {"delivered"}
    assert all([x["outcome"] for x in n["attempts_log"]] == ["delivered"] for n in found)

    box = mailbox[0]
    sms = [f for f in gateways.sms if f["PhoneNumbers"] == phone]
    assert [(f["TemplateCode"], json.loads(f["TemplateParam"])) for f in sms] == [
        ("SMS_LOW", {"account": a, "level": "1", "balance": "45.00"}),
        ("SMS_LOW", {"account": a, "level": "2", "balance": "15.00"}),
        ("SMS_LOW", {"account": a, "level": "3", "balance": "5.00"}),
        ("SMS_CUT", {"account": a, "balance": "0.00"})]
    assert [f["OutId"] for f in sms] == [notification_id(x["alarm_id"], "sms", phone)
                                         for x in alarms]
    assert all(f["SignName"] == "测试物业" for f in sms)
    mails = [m for m in box.mails if m.recipients == [email]]
    assert [m.subject for m in mails] == [
        f"Low balance (level 1) on account {a}", f"Low balance (level 2) on account {a}",
        f"Low balance (level 3) on account {a}", f"Supply cut on account {a}"]
    assert all(m.tls and m.login == "alarms@meterflow.test" for m in mails)
    assert "has 45.00 yuan left, at or below 50.00 yuan (level 1 alert)" in mails[0].text
    assert "(Garden " in mails[0].text and ", 101)" in mails[0].text
    assert mails[0].message_id == f"<{notification_id(alarms[0]['alarm_id'], 'email', email)}" \
                                  "@meterflow.test>"
    wechat = [m for m in gateways.wechat if m["touser"] == openid]
    assert [(m["template_id"], m["data"]["keyword2"]["value"]) for m in wechat] == [
        ("TPL-LOW", "15.00"), ("TPL-LOW", "5.00")]
    assert wechat[0]["data"]["first"]["value"] == f"Low balance (level 2) on account {a}"
    calls = [f for f in gateways.voice if f["CalledNumber"] == phone]
    assert [(f["TtsCode"], json.loads(f["TtsParam"])) for f in calls] == [
        ("TTS_CUT", {"account": a, "balance": "0.00"})]
    hooks = [doc for name, doc in gateways.hooks if doc["event"]["account_id"] == a]
    assert [(h["kind"], h["language"]) for h in hooks] == [("disconnect", "zh")]
    assert hooks[0]["subject"] == f"【停止供应】账户 {a} 已停止供电供水"

    # Redelivery: the same alarms published again, and a second notifier (another group)
    # reading both topics from the beginning while the first one keeps running.
    for alarm in alarms:
        publish(producer, ALARMS, a, alarm)
    second_group = f"notifier-replay-{tag()}"
    second = start_notifier(stack, notifier["config"], notifier["folder"] / "second.log",
                            second_group, health=False)
    try:
        wait_for(lambda: caught_up(stack, second_group), 90, "the second notifier's commits")
        wait_for(lambda: caught_up(stack, notifier["group"]), 60, "the first notifier's commits")
    finally:
        terminate(second.pid, grace_s=20)
        second.wait()
    again = settled(db, a, 12)
    assert [n["notification_id"] for n in again] == [n["notification_id"] for n in found]
    assert len([f for f in gateways.sms if f["PhoneNumbers"] == phone]) == 4
    assert len([m for m in box.mails if m.recipients == [email]]) == 4
    assert len([m for m in gateways.wechat if m["touser"] == openid]) == 2
    assert len([f for f in gateways.voice if f["CalledNumber"] == phone]) == 1
    assert len([d for _, d in gateways.hooks if d["event"]["account_id"] == a]) == 1
    assert all(len(n["attempts_log"]) == 1 for n in again)
    assert gateways.refusals == []

    listed = runner.invoke(notify_app, ["list", "--account", a, "--json"], obj=stack)
    assert listed.exit_code == 0, listed.output
    assert sorted(n["channel"] for n in json.loads(listed.output)) == \
        ["email"] * 4 + ["sms"] * 4 + ["voice", "webhook", "wechat", "wechat"]


def test_a_gateway_failing_twice_delivers_exactly_once(
        stack: Settings, db: psycopg.Connection, notifier: dict[str, Any],
        gateways: Gateways, producer: Any, api: ApiSession) -> None:
    t = tag()
    phone = f"1370000{int(t, 16) % 10000:04d}"
    place = make_place(db, t, phone=phone)
    rule(stack, "--scope", "account", "--id", place.account_id, "--events", "low_balance",
         "--channel", "sms", "--to", "customer")
    gateways.fail_next[phone] = 2
    (alarm,) = wallet_alarms(place.account_id, ["15"])
    publish(producer, ALARMS, place.account_id, alarm)

    (row,) = settled(db, place.account_id, 1)
    assert row["status"] == "delivered" and row["attempts"] == 3
    assert [x["outcome"] for x in row["attempts_log"]] == ["retry", "retry", "delivered"]
    assert "isp.SYSTEM_ERROR" in row["attempts_log"][0]["detail"]
    assert gateways.requests[phone] == 3
    assert len([f for f in gateways.sms if f["PhoneNumbers"] == phone]) == 1
    # Every attempt and its outcome, through the operators' API (read permission).
    with api.client("viewer") as viewer:
        got = viewer.get("/notifications", params={"account_id": place.account_id})
        assert got.status_code == 200, got.text
        (shown,) = got.json()["items"]
        assert [x["outcome"] for x in shown["attempts_log"]] == ["retry", "retry", "delivered"]
        naive = viewer.get("/notifications", params={"since": "2026-07-01T08:00:00"})
        assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "since"
    with api.client(None) as anonymous:
        assert anonymous.get("/notifications").status_code == 401


def test_a_gateway_always_failing_ends_in_a_permanent_failure_and_one_meta_alarm(
        stack: Settings, db: psycopg.Connection, notifier: dict[str, Any],
        gateways: Gateways, producer: Any) -> None:
    t = tag()
    phone = f"1360000{int(t, 16) % 10000:04d}"
    place = make_place(db, t, phone=phone)
    a = place.account_id
    rule(stack, "--scope", "account", "--id", a, "--events", "low_balance", "--channel", "sms",
         "--to", "customer")
    # operators hear of failures by webhook; one of their endpoints is broken too
    rule(stack, "--scope", "account", "--id", a, "--events", "notification_failed",
         "--channel", "webhook", "--to", "ops")
    rule(stack, "--scope", "account", "--id", a, "--events", "notification_failed",
         "--channel", "webhook", "--to", "broken")
    gateways.always_fail.update({phone, "hook:broken"})
    (alarm,) = wallet_alarms(a, ["15"])
    publish(producer, ALARMS, a, alarm)

    found = settled(db, a, 3)  # the SMS, and the meta-alarm to two webhooks
    by_recipient = {n["recipient"]: n for n in found}
    sms = by_recipient[phone]
    assert sms["status"] == "failed" and sms["attempts"] == 4
    assert "gave up after 4 attempt(s)" in sms["last_error"]
    assert [x["outcome"] for x in sms["attempts_log"]] == ["retry", "retry", "retry", "failed"]
    assert gateways.requests[phone] == 4

    meta_id = meta_alarm_id(sms["notification_id"])
    assert by_recipient["ops"]["status"] == "delivered"
    assert by_recipient["ops"]["source_id"] == meta_id
    (doc,) = [d for name, d in gateways.hooks if name == "ops" and d["event"]["account_id"] == a]
    assert doc["kind"] == "notification_failed"
    assert doc["event"]["notification_id"] == sms["notification_id"]
    assert phone not in doc["text"] and f"{phone[:3]}****{phone[-4:]}" in doc["text"]
    assert by_recipient["broken"]["status"] == "failed"

    # exactly one meta-alarm, recorded and published; none about the failed meta-alarm
    recorded = db.execute("SELECT alarm_id FROM alarms WHERE account_id = %s AND kind = "
                          "'notification_failed'", (a,)).fetchall()
    assert recorded == [(meta_id,)]
    published = [json.loads(r.value) for r in read_topic(stack, ALARMS)
                 if json.loads(r.value).get("kind") == "notification_failed"
                 and json.loads(r.value).get("account_id") == a]
    assert [p["alarm_id"] for p in published] == [meta_id]
    meta = db.execute("SELECT meta_alarm IS NULL FROM notifications WHERE recipient = 'broken' "
                      "AND account_id = %s", (a,)).fetchall()
    assert meta == [(True,)]


def test_meter_offline_reaches_the_site_rule(
        stack: Settings, db: psycopg.Connection, notifier: dict[str, Any],
        gateways: Gateways, producer: Any) -> None:
    place = make_place(db, tag())
    rule(stack, "--scope", "site", "--id", place.site_id, "--events", "offline,online",
         "--channel", "webhook", "--to", "ops", "--language", "en")
    from datetime import UTC, datetime

    offline = as_dict(payloads.meter_event(place.meter_id, "offline", datetime.now(UTC),
                                           "no reading"))
    publish(producer, METER_EVENTS, place.meter_id, offline)
    (row,) = settled(db, place.account_id, 1)
    assert (row["event_kind"], row["site_id"], row["meter_id"]) == \
        ("offline", place.site_id, place.meter_id)
    (doc,) = [d for name, d in gateways.hooks if d["event"]["meter_id"] == place.meter_id]
    assert doc["subject"] == f"Meter {place.meter_id} is offline"
    assert f"Meter {place.meter_id} (Garden {place.tag}, 101) has sent no reading" in doc["text"]


def test_bad_input_goes_to_the_dead_letter_topic_and_the_service_goes_on(
        stack: Settings, db: psycopg.Connection, notifier: dict[str, Any],
        gateways: Gateways, producer: Any) -> None:
    t = tag()
    phone = f"1350000{int(t, 16) % 10000:04d}"
    place = make_place(db, t, phone=phone)
    a = place.account_id
    rule(stack, "--scope", "account", "--id", a, "--events", "refused,low_balance",
         "--channel", "sms", "--to", "customer")
    rule(stack, "--scope", "account", "--id", a, "--events", "refused", "--channel", "webhook",
         "--to", "ops")
    garbage = b"{not json " + t.encode()
    naive = {"alarm_id": f"alarm-naive-{t}", "account_id": a, "kind": "disconnect",
             "balance_fen": 0, "at": "2026-07-01T10:00:00"}
    from datetime import UTC, datetime

    from pipeline.billing.wallet_model import Refusal

    # the SMS template for refusals takes {balance}, which a refusal does not have
    refused = as_dict(payloads.refusal(Refusal(a, f"key-{t}", "insufficient_balance", "too much"),
                             datetime.now(UTC)))
    publish(producer, ALARMS, a, garbage)
    publish(producer, ALARMS, a, naive)
    publish(producer, ALARMS, a, refused)
    (alarm,) = wallet_alarms(a, ["15"])
    publish(producer, ALARMS, a, alarm)

    found = settled(db, a, 2)  # the refusal's webhook, and the later low-balance SMS
    assert sorted((n["event_kind"], n["channel"], n["status"]) for n in found) == [
        ("low_balance", "sms", "delivered"), ("refused", "webhook", "delivered")]

    def letters() -> list[DeadLetter] | None:
        mine = [DeadLetter.from_json(r.value) for r in read_topic(stack, DEAD_LETTERS)]
        mine = [d for d in mine if d.stage == "notifier" and (
            t.encode() in d.raw or a.encode() in d.raw)]
        return mine if len(mine) == 3 else None

    found_letters: list[DeadLetter] = wait_for(letters, 30, "three dead letters")
    by_raw = {d.raw: d for d in found_letters}
    assert by_raw[garbage].reason.startswith("not valid JSON")
    assert by_raw[json.dumps(naive).encode()].reason == "field at: timestamp has no UTC offset"
    reason = by_raw[json.dumps(refused).encode()].reason
    assert "channels.sms.templates.refused.params: variable {balance} has no value for a " \
           "refused event" in reason
    assert all(d.source == ALARMS and d.key == a.encode() for d in found_letters)
    assert health()["status"] == "ok"


def test_wechat_token_is_fetched_again_when_revoked(
        stack: Settings, db: psycopg.Connection, notifier: dict[str, Any],
        gateways: Gateways, producer: Any) -> None:
    t = tag()
    openid = f"o-{t}"
    place = make_place(db, t, openid=openid)
    rule(stack, "--scope", "account", "--id", place.account_id, "--events", "low_balance",
         "--channel", "wechat", "--to", "customer")
    first = wallet_alarms(place.account_id, ["15"])[0]
    publish(producer, ALARMS, place.account_id, first)
    settled(db, place.account_id, 1)
    fetched = gateways.token_fetches
    gateways.revoke_tokens()  # as when another process refreshed the token
    second = wallet_alarms(place.account_id, ["15", "30"])[1]
    publish(producer, ALARMS, place.account_id, second)
    found = settled(db, place.account_id, 2)
    assert {n["status"] for n in found} == {"delivered"}
    assert gateways.token_fetches == fetched + 1
    sent = [m for m in gateways.wechat if m["touser"] == openid]
    assert len(sent) == 2 and sent[1]["token"] == f"TOKEN-{fetched + 1}"


def test_rule_commands(stack: Settings, db: psycopg.Connection) -> None:
    place = make_place(db, tag())
    args = ["--scope", "account", "--id", place.account_id, "--events", "disconnect",
            "--channel", "sms", "--to", "13800000000", "--quiet-hours", "22:00-07:00"]
    first = runner.invoke(notify_app, ["rule", "add", *args], obj=stack)
    again = runner.invoke(notify_app, ["rule", "add", *args], obj=stack)
    assert first.exit_code == again.exit_code == 0
    rule_id = first.output.split()[0]
    assert first.output.strip() == f"{rule_id} added"
    assert again.output.strip() == f"{rule_id} already present"
    listed = runner.invoke(notify_app, ["rule", "list", "--id", place.account_id, "--json"],
                           obj=stack)
    assert [(r["rule_id"], r["quiet_hours"], r["recipient"]) for r in
            json.loads(listed.output)] == [(rule_id, "22:00-07:00", "13800000000")]
    bad = runner.invoke(notify_app, ["rule", "add", *args[:-2], "--quiet-hours", "late"],
                        obj=stack)
    assert bad.exit_code == 1 and "quiet hours 'late'" in bad.output
    voice = runner.invoke(notify_app, ["rule", "add", *args[:5], "low_balance", "--channel",
                                       "voice", "--to", "customer"], obj=stack)
    assert voice.exit_code == 1 and "voice call is only for disconnect" in voice.output
    removed = runner.invoke(notify_app, ["rule", "remove", rule_id], obj=stack)
    assert removed.exit_code == 0
    gone = runner.invoke(notify_app, ["rule", "remove", rule_id], obj=stack)
    assert gone.exit_code == 1

