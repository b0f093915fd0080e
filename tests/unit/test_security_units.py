"""The pure parts of security: MQTT password hashes, the broker's files, the bridge's
identity rules, scopes, the local CA, platform identities and settings."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import SecretStr

from connectors.mqtt.identity import Identities, MeterIdentity, problem_of
from meterflow.api.scope import Place, Scope
from meterflow.broker.auth_files import Identity, Rule, parse_passwd, render
from meterflow.broker.platform import (
    MissingSecret,
    broker_for,
    ensure_generated,
    platform_user,
    reserved_names,
)
from meterflow.broker.sync import BrokerSync, Target
from meterflow.settings import Settings
from meterflow.stack import tls
from meterflow.subcommands.broker import probe
from services.devices.passwords import PasswordHash, hash_password

# written by Mosquitto 2.0.11's own `mosquitto_passwd -b pw meter-1 '...'`
MOSQUITTO_LINE = ("$7$101$HGfF4hkb1qw0XWG1$l+PfDO29TU/fCP6rrw0buZCTFaB4EMGWYKuosJvQyaaxpv2oa4nPY"
                  "k89FDjaCRXxn8Ck9s4OgV5Eme7h+BwXKA==")


def test_a_hash_made_by_mosquitto_passwd_verifies_and_round_trips() -> None:
    stored = PasswordHash.from_mosquitto(MOSQUITTO_LINE)
    assert stored.iterations == 101 and len(stored.hash_hex) == 128
    assert stored.verify("correct horse battery staple")
    assert not stored.verify("correct horse battery stapler")
    assert stored.mosquitto() == MOSQUITTO_LINE


def test_our_hashes_are_in_both_brokers_forms() -> None:
    made = hash_password("s3cret", salt="abcdefghijkl")
    assert made == hash_password("s3cret", salt="abcdefghijkl")  # deterministic given a salt
    assert made.verify("s3cret") and not made.verify("s3cret ")
    assert PasswordHash.from_mosquitto(made.mosquitto()) == made
    assert len(bytes.fromhex(made.hash_hex)) == 64 and made.salt == "abcdefghijkl"
    fresh = hash_password("s3cret")
    assert len(fresh.salt) == 12 and fresh.salt.isascii() and fresh.salt != made.salt
    with pytest.raises(ValueError, match="12 ASCII"):
        hash_password("x", salt="short")
    with pytest.raises(ValueError, match="Mosquitto"):
        PasswordHash.from_mosquitto("$6$abc$def")


def identity(name: str, kind: str) -> Identity:
    return Identity(name, hash_password(name, salt="saltsaltsalt"), kind)


def test_the_files_grant_each_identity_its_own_meters_only() -> None:
    platform = [identity("meterflow-bridge", "bridge")]
    rules = [Rule("meterflow-bridge", "read", "meters/+/readings")]
    devices = [identity("M1", "meter"), identity("GW", "gateway"),
               identity("meterflow-bridge", "meter"), identity("bad:name", "meter")]
    files = render(platform, rules, devices,
                   [("M1", "M1"), ("GW", "M2"), ("GW", "M:3"), ("GW", "bad meter"),
                    ("meterflow-bridge", "M9"), ("nobody", "M4")])
    assert files.passwd.splitlines()[1:] == [
        f"GW:{devices[1].password.mosquitto()}", f"M1:{devices[0].password.mosquitto()}",
        f"meterflow-bridge:{platform[0].password.mosquitto()}"]
    assert files.acl.split("\n\n")[1:] == [
        "user GW\ntopic read meters/M2/commands\ntopic read meters/M:3/commands\n"
        "topic write meters/M2/acks\ntopic write meters/M2/readings\n"
        "topic write meters/M:3/acks\ntopic write meters/M:3/readings",
        "user M1\ntopic read meters/M1/commands\ntopic write meters/M1/acks\n"
        "topic write meters/M1/readings",
        "user meterflow-bridge\ntopic read meters/+/readings\n"]
    assert files.users == 3 and files.rules == 10
    assert files.skipped == ("meter meterflow-bridge: the name is taken by a platform user",
                             "meter 'bad:name': not a usable MQTT user name",
                             "GW for meter 'bad meter': not a usable meter id")
    assert parse_passwd(files.passwd)["M1"] == devices[0].password
    assert render(platform, rules, devices, [("M1", "M1")]).passwd == \
        render(platform, rules, list(reversed(devices)), [("M1", "M1")]).passwd


def test_the_bridge_knows_who_may_speak_for_a_meter() -> None:
    assert problem_of("M1", MeterIdentity(False, None, True, False)) is None
    assert problem_of("M1", MeterIdentity(False, "G", False, True)) is None
    assert problem_of("M1", None) == "meter M1 is not a registered MQTT meter"
    assert problem_of("M1", MeterIdentity(True, None, True, False)) == "meter M1 was removed"
    assert problem_of("M1", MeterIdentity(False, "G", False, False)) == (
        "meter M1 has no live credential and its gateway G has none either")
    assert problem_of("M1", MeterIdentity(False, None, False, False)) == (
        "meter M1 has no live MQTT credential and no gateway")


def test_the_registry_refreshes_on_a_miss_at_most_once_a_second() -> None:
    now = [0.0]
    views = [{}, {"M1": MeterIdentity(False, None, True, False)}]
    loads: list[float] = []

    def load() -> dict[str, MeterIdentity]:
        loads.append(now[0])
        return views[min(len(loads) - 1, 1)]

    ids = Identities(load, refresh_s=10, retry_s=1, clock=lambda: now[0])
    assert ids.problem("M1") is not None  # first load, then no second within the second
    assert loads == [0.0]
    now[0] = 1.5
    assert ids.problem("M1") is None  # a miss reloads: the meter was registered meanwhile
    assert loads == [0.0, 1.5]
    now[0] = 5.0
    assert ids.problem("M1") is None and loads == [0.0, 1.5]  # known: no reload
    now[0] = 12.0
    assert ids.problem("M1") is None and loads == [0.0, 1.5, 12.0]  # periodic refresh


def test_a_failed_refresh_keeps_the_last_view_and_says_so() -> None:
    now = [0.0]
    calls = [0]

    def load() -> dict[str, MeterIdentity]:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError("database away")
        return {"M1": MeterIdentity(False, None, True, False)}

    ids = Identities(load, refresh_s=10, clock=lambda: now[0])
    ids.refresh()
    now[0] = 20.0
    assert ids.problem("M1") is None  # last view kept
    assert ids.problem("M2") == ("meter M2 is not a registered MQTT meter (registry not "
                                 "refreshed: database away)")


def test_scopes_allow_their_sites_and_buildings_only() -> None:
    assert Scope.of([], []) == Scope() and not Scope().restricted
    assert Scope().allows(Place("", ""))
    by_site = Scope.of(["S1"], [])
    by_building = Scope.of([], ["B2"])
    assert by_site.allows(Place("S1", "B7")) and not by_site.allows(Place("S2", "B2"))
    assert by_building.allows(Place("S2", "B2")) and not by_building.allows(Place("S2", "B3"))
    assert not by_site.allows(Place("", "")) and not by_building.allows(Place("", ""))
    assert by_building.allows_any([Place("S9", "B9"), Place("S2", "B2")])
    assert by_site.params() == {"scope_on": True, "scope_sites": ["S1"],
                                "scope_buildings": []}
    assert by_site.describe() == "sites S1" and Scope().describe() == "everything"


def test_local_ca_issues_a_server_certificate_for_the_broker(tmp_path: Path) -> None:
    files = tls.ensure_server(tmp_path, ["mqtt.example.internal"])
    first = files.cert.read_bytes()
    cert = x509.load_pem_x509_certificate(first)
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"localhost",
                                                            "mqtt.example.internal"}
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0
    assert files.key.stat().st_mode & 0o077 == 0
    assert cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=700)
    again = tls.ensure_server(tmp_path, ["mqtt.example.internal"])
    assert again.cert.read_bytes() == first  # kept while current
    other = tls.ensure_server(tmp_path, ["broker.other"])  # a new name: a new certificate
    assert other.cert.read_bytes() != first
    assert x509.load_pem_x509_certificate(other.ca_cert.read_bytes()) == ca


def test_platform_users_come_from_settings_or_generated_secrets(tmp_path: Path) -> None:
    settings = Settings.model_validate({"state_dir": tmp_path,
                                        "mqtt_dispatcher_password": "given"})
    with pytest.raises(MissingSecret, match="METERFLOW_MQTT_BRIDGE_PASSWORD"):
        platform_user(settings, "bridge")
    ensure_generated(settings)
    bridge = platform_user(settings, "bridge")
    assert bridge.user == "meterflow-bridge" and len(bridge.password.get_secret_value()) == 32
    assert platform_user(settings, "dispatcher").password.get_secret_value() == "given"
    assert not (tmp_path / "mosquitto" / "secrets" / "meterflow-dispatcher").exists()
    assert (tmp_path / "mosquitto" / "secrets").stat().st_mode & 0o077 == 0
    broker = broker_for(settings, "dispatcher")
    assert (broker.user, broker.password, broker.port, broker.tls) == (
        "meterflow-dispatcher", "given", 11883, None)
    assert "given" not in repr(broker)
    assert reserved_names(settings) == {"meterflow-bridge", "meterflow-dispatcher",
                                        "meterflow-monitor"}
    override = settings.model_copy(update={"mqtt_user": "shared",
                                           "mqtt_password": SecretStr("pw"), "mqtt_tls": "on"})
    broker = broker_for(override, "bridge")
    assert (broker.user, broker.password, broker.port) == ("shared", "pw", 11884)
    assert broker.tls is not None and broker.tls.ca_file is None  # no local CA: the system's


def test_settings_travel_to_a_child_process_as_variables(tmp_path: Path) -> None:
    settings = Settings.model_validate({"state_dir": tmp_path, "mqtt_tls": "only",
                                        "mqtt_bridge_password": "pw", "mqtt_identity_check": False})
    env = settings.as_env()
    assert env["METERFLOW_STATE_DIR"] == str(tmp_path)
    assert env["METERFLOW_MQTT_BRIDGE_PASSWORD"] == "pw"
    assert env["METERFLOW_MQTT_IDENTITY_CHECK"] == "false"
    assert "METERFLOW_PG_DSN" not in env
    assert Settings.model_validate({k.removeprefix("METERFLOW_").lower(): v
                                    for k, v in env.items()}) == settings


def test_before_the_schema_the_sync_writes_the_platform_users_alone(tmp_path: Path) -> None:
    settings = Settings.model_validate({"state_dir": tmp_path})
    ensure_generated(settings)
    target = Target(tmp_path / "auth", tmp_path / "no-such.pid")
    runner = BrokerSync(settings, target)
    assert probe(runner) == {"status": "starting"}
    outcome = runner.initial()
    assert outcome.changed and not outcome.reloaded and outcome.users == 3
    users = parse_passwd(target.passwd.read_text())
    assert set(users) == {"meterflow-bridge", "meterflow-dispatcher", "meterflow-monitor"}
    assert users["meterflow-bridge"].verify(
        platform_user(settings, "bridge").password.get_secret_value())
    assert "user meterflow-dispatcher\ntopic read meters/+/acks\n" \
        "topic write meters/+/commands\n" in target.acl.read_text()
    assert target.passwd.stat().st_mode & 0o077 == 0
    assert probe(runner)["error"] == "waiting for the schema (meterflow db migrate)"
    assert "status" not in probe(runner)  # healthy while it waits
    again = runner.initial()  # the same password keeps its line: nothing to reload
    assert not again.changed
