"""The gateways the settings turn on, with the merchant's keys read from their files once
(docs/tenant.md, merchant keys)."""

from __future__ import annotations

from pathlib import Path

from connectors.gateways.clients import (
    AlipayConfig,
    AlipayGateway,
    Gateway,
    WeChatConfig,
    WeChatGateway,
)
from meterflow.settings import Settings

NOTIFY_PATHS = {"wechat": "/t/notify/wechat", "alipay": "/t/notify/alipay"}


def _read(path: Path | None, name: str) -> str:
    if path is None:
        raise ValueError(f"{name}: not set (a file path)")
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None


def configured_gateways(settings: Settings) -> dict[str, Gateway]:
    """name -> gateway for each gateway whose merchant is set; ValueError naming the
    setting when one of its keys is missing or unreadable."""
    base = settings.tenant_base_url.rstrip("/")
    found: dict[str, Gateway] = {}
    if settings.wechat_mchid:
        certs = tuple(p.read_text() for p in sorted(settings.wechat_platform_cert_dir.glob(
            "*.pem"))) if settings.wechat_platform_cert_dir else ()
        public = (_read(settings.wechat_platform_public_key_file,
                        "METERFLOW_WECHAT_PLATFORM_PUBLIC_KEY_FILE")
                  if settings.wechat_platform_public_key_file else "")
        found["wechat"] = WeChatGateway(WeChatConfig(
            mchid=settings.wechat_mchid, appid=settings.wechat_appid,
            cert_serial_no=settings.wechat_cert_serial_no,
            private_key_pem=_read(settings.wechat_private_key_file,
                                  "METERFLOW_WECHAT_PRIVATE_KEY_FILE"),
            apiv3_key=_read(settings.wechat_apiv3_key_file, "METERFLOW_WECHAT_APIV3_KEY_FILE"),
            platform_public_key_pem=public,
            platform_public_key_id=settings.wechat_platform_public_key_id,
            notify_url=base + NOTIFY_PATHS["wechat"], api_url=settings.wechat_api_url,
            platform_certificates=certs))
    if settings.alipay_app_id:
        found["alipay"] = AlipayGateway(AlipayConfig(
            app_id=settings.alipay_app_id, seller_id=settings.alipay_seller_id,
            private_key_pem=_read(settings.alipay_private_key_file,
                                  "METERFLOW_ALIPAY_PRIVATE_KEY_FILE"),
            alipay_public_key_pem=_read(settings.alipay_public_key_file,
                                        "METERFLOW_ALIPAY_PUBLIC_KEY_FILE"),
            notify_url=base + NOTIFY_PATHS["alipay"], gateway_url=settings.alipay_gateway_url))
    return found
