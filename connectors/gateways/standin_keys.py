"""Generated key material of the stand-in gateways, written where MeterFlow's settings read
a merchant's real keys (docs/tenant.md, merchant keys): the merchant's (or application's)
private key, the gateway's public key, and for WeChat the APIv3 key and a platform
certificate. The gateway's private keys stay in the stand-in's memory."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def self_signed(key: rsa.RSAPrivateKey, name: str, serial: int) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .sign(key, hashes.SHA256()))


@dataclass(frozen=True)
class WeChatKeys:
    """A merchant and its platform, as WeChat Pay would issue them."""

    mchid: str
    appid: str
    app_secret: str
    merchant_key: rsa.RSAPrivateKey
    merchant_serial: str
    platform_key: rsa.RSAPrivateKey
    platform_key_id: str
    platform_cert: x509.Certificate
    apiv3_key: str

    @classmethod
    def generate(cls) -> WeChatKeys:
        platform = new_key()
        serial = secrets.randbits(120) | 1 << 120
        return cls("1900000109", "wx" + secrets.token_hex(8), secrets.token_hex(16), new_key(),
                   secrets.token_hex(20).upper(), platform,
                   "PUB_KEY_ID_" + secrets.token_hex(16).upper(), self_signed(
                       platform, "Wechatpay platform (stand-in)", serial),
                   secrets.token_urlsafe(24)[:32])

    @property
    def platform_serial(self) -> str:
        return format(self.platform_cert.serial_number, "X")

    def write(self, folder: Path) -> dict[str, str]:
        """Write the merchant's files; return the METERFLOW_* settings naming them."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "wechat_apiclient_key.pem").write_text(private_pem(self.merchant_key))
        (folder / "wechat_platform_public_key.pem").write_text(
            public_pem(self.platform_key.public_key()))
        (folder / "wechat_apiv3_key").write_text(self.apiv3_key)
        for path in folder.glob("wechat_*.pem"):
            path.chmod(0o600)
        return {"METERFLOW_WECHAT_MCHID": self.mchid, "METERFLOW_WECHAT_APPID": self.appid,
                "METERFLOW_WECHAT_APP_SECRET": self.app_secret,
                "METERFLOW_WECHAT_CERT_SERIAL_NO": self.merchant_serial,
                "METERFLOW_WECHAT_PRIVATE_KEY_FILE": str(folder / "wechat_apiclient_key.pem"),
                "METERFLOW_WECHAT_APIV3_KEY_FILE": str(folder / "wechat_apiv3_key"),
                "METERFLOW_WECHAT_PLATFORM_PUBLIC_KEY_FILE":
                    str(folder / "wechat_platform_public_key.pem"),
                "METERFLOW_WECHAT_PLATFORM_PUBLIC_KEY_ID": self.platform_key_id}


@dataclass(frozen=True)
class AlipayKeys:
    """An application and Alipay's key pair, as the open platform would issue them."""

    app_id: str
    seller_id: str
    app_key: rsa.RSAPrivateKey
    alipay_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> AlipayKeys:
        return cls("2021" + str(secrets.randbelow(10**12)).zfill(12),
                   "2088" + str(secrets.randbelow(10**12)).zfill(12), new_key(), new_key())

    def write(self, folder: Path) -> dict[str, str]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "alipay_app_private_key.pem").write_text(private_pem(self.app_key))
        (folder / "alipay_public_key.pem").write_text(public_pem(self.alipay_key.public_key()))
        (folder / "alipay_app_private_key.pem").chmod(0o600)
        return {"METERFLOW_ALIPAY_APP_ID": self.app_id,
                "METERFLOW_ALIPAY_SELLER_ID": self.seller_id,
                "METERFLOW_ALIPAY_PRIVATE_KEY_FILE": str(folder / "alipay_app_private_key.pem"),
                "METERFLOW_ALIPAY_PUBLIC_KEY_FILE": str(folder / "alipay_public_key.pem")}
