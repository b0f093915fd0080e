"""The configuration file: a complete example, field paths in errors, secrets by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connectors.notify.config import (
    AliyunSms,
    ConfigError,
    load_config,
    parse_config,
    read_secrets,
)
from connectors.notify.service import build_channels

EXAMPLE = """
notify: 1
defaults: {language: zh, timezone: Asia/Shanghai}
delivery: {base_s: 30, factor: 2, cap_s: 1800, max_attempts: 8, attempt_timeout_s: 10}
urgent: [disconnect]
rate_limits:
  sms: {count: 5, per_s: 3600}
channels:
  sms:
    provider: aliyun
    access_key_id: LTAI-example
    access_key_secret_env: METERFLOW_SMS_SECRET
    sign_name: 某某物业
    templates:
      low_balance: {code: SMS_100001, params: [account, balance, level]}
      disconnect: {code: SMS_100002, params: [account, balance]}
  voice:
    access_key_id: LTAI-example
    access_key_secret_env: METERFLOW_VOICE_SECRET
    called_show_number: "057100000000"
    templates:
      disconnect: {code: TTS_100003, params: [account, balance]}
  email:
    host: smtp.example.com
    port: 587
    security: starttls
    username: alarms@example.com
    password_env: METERFLOW_SMTP_PASSWORD
    from: "MeterFlow <alarms@example.com>"
  wechat:
    app_id: wx0123456789
    app_secret_env: METERFLOW_WECHAT_SECRET
    templates:
      low_balance:
        template_id: TPL-low
        data: {first: "{subject}", keyword1: "{account}", keyword2: "{balance}",
               remark: "{text}"}
  webhook:
    ops: {url: "https://ops.example.com/hooks/meterflow", secret_env: METERFLOW_HOOK_OPS}
templates:
  en:
    offline: {subject: "Meter {meter} offline", text: "{meter} silent since {time}"}
"""
SECRETS = {"METERFLOW_SMS_SECRET": "sms-secret-1", "METERFLOW_VOICE_SECRET": "voice-secret-2",
           "METERFLOW_SMTP_PASSWORD": "smtp-secret-3", "METERFLOW_WECHAT_SECRET": "wx-secret-4",
           "METERFLOW_HOOK_OPS": "hook-secret-5"}


def test_the_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(EXAMPLE)
    config = load_config(path)
    assert isinstance(config.channels.sms, AliyunSms)
    assert config.rate_limit("sms") is not None and config.rate_limit("email") is None
    secrets = read_secrets(config, SECRETS)
    channels = build_channels(config, secrets)
    assert sorted(channels) == ["email", "sms", "voice", "webhook", "wechat"]
    shown = repr(channels) + repr(config) + repr(list(channels.values()))
    assert secrets == SECRETS
    assert not [value for value in SECRETS.values() if value in shown]


def test_docs_carry_the_same_example() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "contracts.md").read_text()
    assert yaml.safe_load(EXAMPLE) == yaml.safe_load(
        docs.split("```yaml notify-example\n")[1].split("```")[0])


def test_missing_secrets_are_named() -> None:
    config = parse_config(yaml.safe_load(EXAMPLE))
    with pytest.raises(ConfigError, match="METERFLOW_SMTP_PASSWORD, METERFLOW_WECHAT_SECRET"):
        read_secrets(config, {k: v for k, v in SECRETS.items()
                              if k not in ("METERFLOW_SMTP_PASSWORD", "METERFLOW_WECHAT_SECRET")})


@pytest.mark.parametrize(("patch", "message"), [
    ({"urgent": ["flood"]}, "urgent: Value error, unknown event kind"),
    ({"rate_limits": {"fax": {"count": 1, "per_s": 1}}}, "unknown channel"),
    ({"delivery": {"max_attempts": 0}}, "delivery.max_attempts"),
    ({"channels": {"sms": {"provider": "carrier-pigeon"}}}, "channels.sms"),
    ({"channels": {"wechat": {"app_id": "w", "app_secret_env": "X", "templates": {
        "offline": {"template_id": "t", "data": {"first": "{meterr}"}}}}}},
     r"channels.wechat.templates.offline.data.first: unknown variable \{meterr\}"),
    ({"defaults": {"timezone": "Mars/Olympus"}}, "defaults.timezone"),
    ({"surprise": 1}, "surprise"),
])
def test_errors_name_the_field(patch: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(patch)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    assert load_config(None).channels.sms is None


def test_the_notifier_refuses_to_start_without_its_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from meterflow.settings import Settings
    from meterflow.subcommands.notify import notifier

    path = tmp_path / "notify.yaml"
    path.write_text(EXAMPLE)
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    app = typer.Typer()
    app.command()(notifier)
    result = CliRunner().invoke(app, ["--config", str(path)], obj=Settings())
    assert result.exit_code == 2
    assert "secret environment variable(s) not set: METERFLOW_SMS_SECRET" in result.output
    path.write_text("delivery: {max_attempts: 0}")
    result = CliRunner().invoke(app, ["--config", str(path)], obj=Settings())
    assert result.exit_code == 2 and "delivery.max_attempts" in result.output
