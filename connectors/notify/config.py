"""The notifier's configuration file (YAML): gateways, delivery policy, rate limits, texts.

Read once when ``meterflow notifier`` starts (``--config`` or ``METERFLOW_NOTIFY_CONFIG``)
and passed down frozen. Secrets are never in the file or the database: each is named by an
environment variable (``*_env``), read at start, and kept out of every repr and log line.
The format is documented in docs/contracts.md ("Notifier configuration"); a wrong field is
refused at start with its path, e.g. ``channels.sms.templates.low_balance.params: unknown
variable {bal}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from connectors.notify.model import EVENT_KINDS
from connectors.notify.policy import DEFAULT_URGENT, RateLimit, RetryPolicy
from connectors.notify.rules import CHANNELS
from connectors.notify.templates import KNOWN_VARIABLES, TemplateError, Templates, Text, check


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the field or variable."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _kinds(value: Mapping[str, Any]) -> Mapping[str, Any]:
    unknown = [k for k in value if k not in EVENT_KINDS]
    if unknown:
        raise ValueError(f"unknown event kind(s) {', '.join(unknown)}")
    return value


T = TypeVar("T")
#: Templates per event kind: every key a known kind.
ByKind = Annotated[dict[str, T], AfterValidator(_kinds)]


class Delivery(_Model):
    base_s: float = Field(30.0, gt=0)
    factor: float = Field(2.0, ge=1)
    cap_s: float = Field(1800.0, gt=0)
    jitter: float = Field(0.2, ge=0, lt=1)
    max_attempts: int = Field(8, ge=1)
    attempt_timeout_s: float = Field(10.0, gt=0)
    batch_size: int = Field(20, ge=1, le=500)
    workers: int = Field(4, ge=1, le=64)
    poll_s: float = Field(0.5, gt=0)
    max_event_age_s: float = Field(86400.0, gt=0)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.base_s, self.factor, max(self.cap_s, self.base_s), self.jitter,
                           self.max_attempts)


class Limit(_Model):
    count: int = Field(ge=1)
    per_s: float = Field(gt=0)


class Defaults(_Model):
    language: Literal["zh", "en"] = "zh"
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value


class ProviderTemplate(_Model):
    """A template registered at an SMS or voice provider, and the variables it takes."""

    code: str = Field(min_length=1, max_length=64)
    params: tuple[str, ...] = ()

    @field_validator("params")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in value if p not in KNOWN_VARIABLES]
        if unknown:
            raise ValueError(f"unknown variable(s) {', '.join('{' + u + '}' for u in unknown)}"
                             f" (known: {', '.join(sorted(KNOWN_VARIABLES))})")
        return value


class AliyunSms(_Model):
    """Alibaba Cloud SMS ``SendSms`` (RPC API 2017-05-25, signature version 1.0)."""

    provider: Literal["aliyun"]
    endpoint: str = "https://dysmsapi.aliyuncs.com/"
    access_key_id: str = Field(min_length=1)
    access_key_secret_env: str = Field(min_length=1)
    sign_name: str = Field(min_length=1)
    region_id: str = "cn-hangzhou"
    templates: ByKind[ProviderTemplate] = Field(default_factory=dict)


class WebhookSms(_Model):
    """An HTTP SMS gateway taking the rendered text, signed like the generic webhook."""

    provider: Literal["webhook"]
    url: str = Field(min_length=1)
    secret_env: str = Field(min_length=1)


class Voice(_Model):
    """Alibaba Cloud voice ``SingleCallByTts`` (Dyvms RPC API 2017-05-25)."""

    endpoint: str = "https://dyvmsapi.aliyuncs.com/"
    access_key_id: str = Field(min_length=1)
    access_key_secret_env: str = Field(min_length=1)
    called_show_number: str = ""
    region_id: str = "cn-hangzhou"
    templates: ByKind[ProviderTemplate] = Field(default_factory=dict)


class Email(_Model):
    """SMTP submission: STARTTLS (RFC 3207) on 587 by default, or implicit TLS on 465."""

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password_env: str = ""
    sender: str = Field(min_length=3, alias="from")
    ca_file: Path | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WechatTemplate(_Model):
    template_id: str = Field(min_length=1)
    url: str = ""
    data: dict[str, str] = Field(default_factory=lambda: {
        "first": "{event}", "keyword1": "{account}", "keyword2": "{time}", "remark": "{text}"})


class Wechat(_Model):
    """WeChat official account template messages (``/cgi-bin/message/template/send``)."""

    base_url: str = "https://api.weixin.qq.com"
    app_id: str = Field(min_length=1)
    app_secret_env: str = Field(min_length=1)
    templates: ByKind[WechatTemplate] = Field(default_factory=dict)


class WebhookEndpoint(_Model):
    url: str = Field(min_length=1)
    secret_env: str = Field(min_length=1)


class Channels(_Model):
    sms: Annotated[AliyunSms | WebhookSms, Field(discriminator="provider")] | None = None
    voice: Voice | None = None
    email: Email | None = None
    wechat: Wechat | None = None
    webhook: dict[str, WebhookEndpoint] = Field(default_factory=dict)


class TemplateOverride(_Model):
    subject: str
    text: str


class NotifyConfig(_Model):
    notify: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    delivery: Delivery = Field(default_factory=Delivery)
    urgent: tuple[str, ...] = tuple(sorted(DEFAULT_URGENT))
    rate_limits: dict[str, Limit] = Field(default_factory=dict)
    channels: Channels = Field(default_factory=Channels)
    templates: dict[str, dict[str, TemplateOverride]] = Field(default_factory=dict)

    @field_validator("urgent")
    @classmethod
    def _urgent(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _kinds(dict.fromkeys(value))
        return value

    @field_validator("rate_limits")
    @classmethod
    def _channels(cls, value: dict[str, Limit]) -> dict[str, Limit]:
        unknown = [c for c in value if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel(s) {', '.join(unknown)}")
        return value

    def rate_limit(self, channel: str) -> RateLimit | None:
        limit = self.rate_limits.get(channel)
        return None if limit is None else RateLimit(limit.count, limit.per_s)

    def texts(self) -> Templates:
        return Templates({lang: {kind: Text(t.subject, t.text) for kind, t in kinds.items()}
                          for lang, kinds in self.templates.items()})


def _check_channel_templates(config: NotifyConfig) -> None:
    wechat = config.channels.wechat
    for kind, template in (wechat.templates if wechat else {}).items():
        for name, text in template.data.items():
            # {subject} and {text} are the rendered message itself
            check(text.replace("{subject}", "").replace("{text}", ""),
                  f"channels.wechat.templates.{kind}.data.{name}")


def parse_config(data: Any) -> NotifyConfig:
    """A configuration from parsed YAML; errors name the field path."""
    try:
        config = NotifyConfig.model_validate(data or {})
        config.texts()
        _check_channel_templates(config)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(problems) from None
    except TemplateError as exc:
        raise ConfigError(str(exc)) from None
    return config


def load_config(path: Path | None) -> NotifyConfig:
    """The file at ``path``; no file: defaults and no channel (nothing can be sent)."""
    if path is None:
        return parse_config({})
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data)


def secret_names(config: NotifyConfig) -> list[str]:
    """Every environment variable the configured channels read a secret from."""
    ch = config.channels
    names: list[str] = []
    if isinstance(ch.sms, AliyunSms):
        names.append(ch.sms.access_key_secret_env)
    elif isinstance(ch.sms, WebhookSms):
        names.append(ch.sms.secret_env)
    if ch.voice is not None:
        names.append(ch.voice.access_key_secret_env)
    if ch.email is not None and ch.email.password_env:
        names.append(ch.email.password_env)
    if ch.wechat is not None:
        names.append(ch.wechat.app_secret_env)
    names.extend(endpoint.secret_env for endpoint in ch.webhook.values())
    return names


def read_secrets(config: NotifyConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The secrets, by variable name, from the environment the entry point hands over; a
    missing or empty one is a ConfigError naming it."""
    missing = [n for n in secret_names(config) if not environ.get(n)]
    if missing:
        raise ConfigError(f"secret environment variable(s) not set: {', '.join(missing)}")
    return {n: environ[n] for n in secret_names(config)}
